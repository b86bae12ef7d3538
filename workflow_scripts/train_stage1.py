from audioretrieval.workflow import logged_to, run_training, training_spec

with logged_to(snakemake.log[0]):
    spec = training_spec(snakemake, seed=snakemake.params.seed)
    run_training(spec, gpus=snakemake.params.gpus, threads=snakemake.threads)
