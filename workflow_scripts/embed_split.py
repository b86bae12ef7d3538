import torch

from audioretrieval.device import job_device
from audioretrieval.model.embed import embed_checkpoint
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.gpus)
    embed_checkpoint(
        snakemake.input.checkpoint,
        snakemake.input.audio,
        snakemake.input.captions,
        snakemake.output[0],
        snakemake.params.batch_size,
        device,
        snakemake.params.precision,
        num_workers=snakemake.threads - 1,
        text_states=list(snakemake.input.text_states),
    )
