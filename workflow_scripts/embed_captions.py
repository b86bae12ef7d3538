import torch

from audioretrieval.correspondences.sentences import estimate_from_captions
from audioretrieval.device import job_device
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.gpus)
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
