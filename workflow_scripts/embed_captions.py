import torch

from audioretrieval.correspondences.captions import estimate_from_captions
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    device = "cuda" if snakemake.params.gpus and torch.cuda.is_available() else "cpu"
    settings = snakemake.params.settings
    estimate_from_captions(
        snakemake.input.audio,
        snakemake.input.captions,
        snakemake.output[0],
        settings["model"],
        settings["aggregation"],
        settings["batch_size"],
        device,
    )
    log.info("captions embedded with %s on %s (aggregation: %s)", settings["model"], device, settings["aggregation"])
