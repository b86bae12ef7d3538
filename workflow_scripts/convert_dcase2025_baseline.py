from audioretrieval.model.dcase2025_checkpoint import convert_dcase2025_checkpoint
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    converted = convert_dcase2025_checkpoint(
        snakemake.input[0], snakemake.output[0], snakemake.params.text_model, snakemake.params.segment_s
    )
    log.info("source %s", converted["source"])
    log.info("model_config %s", converted["model_config"])
    log.info("%d tensors, epoch %d, seed %d", len(converted["state_dict"]), converted["epoch"], converted["seed"])
