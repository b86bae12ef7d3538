from pathlib import Path

from audioretrieval.data.demo import DemoSpec, generate_demo
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    for stats in generate_demo(Path(snakemake.output[0]).parent, DemoSpec(**snakemake.params.spec), snakemake.threads):
        log.info("%s", stats)
