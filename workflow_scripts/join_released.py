import os

from audioretrieval.model.released_checkpoint import join_parts
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    joined = join_parts(list(snakemake.input), snakemake.output[0])
    log.info("joined %s into %s (%d bytes)", ", ".join(snakemake.input), joined, os.path.getsize(joined))
