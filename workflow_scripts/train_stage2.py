from audioretrieval.train import RunSpec
from audioretrieval.workflow import logged_to, run_training

with logged_to(snakemake.log[0]):
    run = snakemake.params.run
    model = dict(snakemake.params.model)
    if snakemake.input.tokenizer:
        model["text"] = {**model["text"], "tokenizer": snakemake.input.tokenizer[0]}
    spec = RunSpec(
        seed=run["seed"],
        model=model,
        train=dict(snakemake.params.train),
        train_audio=snakemake.input.train_audio,
        train_captions=snakemake.input.train_captions,
        val_audio=snakemake.input.val_audio,
        val_captions=snakemake.input.val_captions,
        best=snakemake.output.best,
        last=snakemake.output.last,
        log_table=snakemake.output.log_table,
        init_checkpoint=snakemake.input.init,
        targets=snakemake.input.targets,
        loss_weights={"dist": run["dist_weight"], "sup": run["sup_weight"]},
    )
    run_training(spec, gpus=snakemake.params.gpus, threads=snakemake.threads)
