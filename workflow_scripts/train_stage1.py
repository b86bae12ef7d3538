from audioretrieval.launch import run_training, training_spec
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]):
    spec = training_spec(snakemake, seed=snakemake.params.seed)
    run_training(spec, gpus=snakemake.params.gpus, threads=snakemake.threads)
