from audioretrieval.pipeline.launch import run_training, training_spec
from audioretrieval.pipeline.workflow import logged_to, named

with logged_to(snakemake.log[0]):
    spec = training_spec(
        named(snakemake.input),
        named(snakemake.output),
        snakemake.params.model,
        snakemake.params.train,
        snakemake.params.run,
    )
    run_training(spec, gpus=snakemake.params.gpus, threads=snakemake.threads)
