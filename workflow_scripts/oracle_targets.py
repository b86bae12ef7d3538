import pandas as pd

from audioretrieval.correspondences.truth import write_oracle_targets
from audioretrieval.data.dataset import read_caption_table
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]):
    file_names = AudioH5(snakemake.input.audio).file_names
    captions = read_caption_table(snakemake.input.captions, len(file_names), snakemake.input.audio)
    write_oracle_targets(file_names, captions, pd.read_parquet(snakemake.input.truth), snakemake.output[0])
