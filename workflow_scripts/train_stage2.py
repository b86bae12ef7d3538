from audioretrieval.launch import run_training, training_spec
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]):
    run = snakemake.params.run
    spec = training_spec(
        snakemake,
        seed=run["seed"],
        init_checkpoint=snakemake.input.init,
        targets=next(iter(snakemake.input.targets), None),
        target_tau=run["target_tau"],
        loss_weights={"dist": run["dist_weight"], "sup": run["sup_weight"]},
    )
    run_training(spec, gpus=snakemake.params.gpus, threads=snakemake.threads)
