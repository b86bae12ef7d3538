import pandas as pd

from audioretrieval.correspondences.quality import quality_table
from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    sources = dict(zip(snakemake.params.rows, snakemake.input.sources))
    table = quality_table(sources, pd.read_parquet(snakemake.input.truth))
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(table.to_markdown(index=False, floatfmt=".4f") + "\n", snakemake.output.markdown)
    log.info("\n%s", table.to_string(index=False))
