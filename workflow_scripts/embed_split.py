import torch

from audioretrieval.model.embed import embed_checkpoint
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = "cuda" if snakemake.params.gpus and torch.cuda.is_available() else "cpu"
    embed_checkpoint(
        snakemake.input.checkpoint,
        snakemake.input.audio,
        snakemake.input.captions,
        snakemake.output[0],
        snakemake.params.batch_size,
        device,
        snakemake.params.precision,
        num_workers=snakemake.threads - 1,
    )
