import pandas as pd

from audioretrieval.correspondences.truth import target_mass
from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    truth = pd.read_parquet(snakemake.input.truth)
    table = pd.DataFrame(
        [
            {**row, **target_mass(path, truth, snakemake.params.batch_size, row["tau"])}
            for row, path in zip(snakemake.params.rows, snakemake.input.targets)
        ]
    )
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(table.to_markdown(index=False, floatfmt=".3f") + "\n", snakemake.output.markdown)
    log.info("\n%s", table.to_string(index=False))
