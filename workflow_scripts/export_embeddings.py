import torch

from audioretrieval.export import export_model
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    export_model(
        snakemake.input.checkpoint,
        snakemake.input.audio,
        snakemake.input.captions,
        snakemake.output.embeddings,
        snakemake.output.top_k,
        k=snakemake.params.top_k,
        batch_size=snakemake.params.batch_size,
        device="cuda" if snakemake.params.gpus and torch.cuda.is_available() else "cpu",
        precision=snakemake.params.precision,
    )
