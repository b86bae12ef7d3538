import pandas as pd

from audioretrieval.data.captions import build_caption_table
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.files import write_table_atomically
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    skipped = pd.read_csv(snakemake.input.skipped, dtype=str, keep_default_na=False)
    skipped_files = {member.rsplit("/", 1)[-1] for member in skipped["member"]}
    table = build_caption_table(snakemake.input.captions, AudioH5(snakemake.input.audio), skipped_files)
    write_table_atomically(table, snakemake.output[0])
    log.info("%d captions of %d clips", len(table), table["clip_index"].nunique())
