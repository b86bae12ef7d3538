from pathlib import Path

from audioretrieval.data import wavcaps
from audioretrieval.pipeline.workflow import logged_to

source = snakemake.params.source
raw_dir = Path(snakemake.output[0]).parents[2]  # {raw_dir}/json_files/{source}/{name}.json
with logged_to(snakemake.log[0]) as log:
    parts = wavcaps.download_source(
        snakemake.params.base_url, raw_dir, source, snakemake.params.download, snakemake.params.caption_files
    )
    log.info("%s: caption file and %d archive parts downloaded", source, len(parts))
