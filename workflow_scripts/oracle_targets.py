import pandas as pd

from audioretrieval.truth import write_oracle_targets
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]):
    write_oracle_targets(snakemake.input.audio, snakemake.input.captions, pd.read_parquet(snakemake.input.truth),
                         snakemake.output[0])
