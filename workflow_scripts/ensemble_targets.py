from audioretrieval.correspondences.ensemble import build_targets
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    build_targets(list(snakemake.input), snakemake.output[0], snakemake.params.caption_aggregation)
    log.info("targets of %d members", len(snakemake.input))
