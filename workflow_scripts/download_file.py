from audioretrieval.data.download import download
from audioretrieval.pipeline.workflow import logged_to

settings = snakemake.params.download
with logged_to(snakemake.log[0]) as log:
    download(
        snakemake.params.url,
        snakemake.output[0],
        snakemake.params.md5,
        retries=settings["retries"],
        backoff_s=settings["backoff_s"],
        timeout_s=settings["timeout_s"],
    )
    log.info("downloaded %s", snakemake.params.url)
