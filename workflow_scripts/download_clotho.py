from pathlib import Path

from audioretrieval.data.download import download
from audioretrieval.pipeline.workflow import logged_to

settings = snakemake.params.download
name = Path(snakemake.output[0]).name
with logged_to(snakemake.log[0]) as log:
    download(
        f"{settings['base_url'].rstrip('/')}/{name}",
        snakemake.output[0],
        snakemake.params.md5,
        retries=settings["retries"],
        backoff_s=settings["backoff_s"],
        timeout_s=settings["timeout_s"],
    )
    log.info("downloaded and verified %s", name)
