import torch

from audioretrieval.model.text_states import write_text_states
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    count = write_text_states(snakemake.params.text, snakemake.input.captions, snakemake.output[0])
    log.info("pooled states of %d distinct captions", count)
