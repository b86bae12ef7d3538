from pathlib import Path

import torch

from audioretrieval.device import job_device
from audioretrieval.evaluation.score import score_file, write_scores
from audioretrieval.model.embed import embed_checkpoint
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.gpus)
    relevance = next(iter(snakemake.input.relevance), None)
    for checkpoint in snakemake.input.checkpoints:
        weights = Path(checkpoint).stem  # best or last (rules/common.smk: checkpoint_file)
        output = {key: snakemake.output[f"{weights}_{key}"] for key in ("embeddings", "metrics", "ranks")}
        embed_checkpoint(
            checkpoint,
            snakemake.input.audio,
            snakemake.input.captions,
            output["embeddings"],
            snakemake.params.batch_size,
            device,
            snakemake.params.precision,
            num_workers=snakemake.threads - 1,
            text_states=list(snakemake.input.text_states),
        )
        metrics, per_query = score_file(output["embeddings"], relevance)
        write_scores(metrics, per_query, output["metrics"], output["ranks"])
        log.info("%s weights: %s", weights, metrics)
