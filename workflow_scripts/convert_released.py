from audioretrieval.model.released_checkpoint import convert_released_checkpoint
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    converted = convert_released_checkpoint(
        snakemake.input[0], snakemake.output[0], snakemake.params.text_model, snakemake.params.segment_s
    )
    log.info("source %s (no published checksum to compare with)", converted["source"])
    log.info("model_config %s", converted["model_config"])
    log.info("%d tensors, epoch %d, seed %d", len(converted["state_dict"]), converted["epoch"], converted["seed"])
