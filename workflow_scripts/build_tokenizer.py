from pathlib import Path

from audioretrieval.model.tokenizer import build_tokenizer
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    size = build_tokenizer(snakemake.input.captions, Path(snakemake.output[0]).parent, snakemake.params.vocab_size)
    log.info("tokenizer of %d tokens", size)
