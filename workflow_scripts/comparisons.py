import pandas as pd

from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report.compare import set_comparisons
from audioretrieval.report.pages import write_report_page

with logged_to(snakemake.log[0]) as log:
    per_query = {
        test_set: {
            name: pd.read_parquet(path)
            for group, names in snakemake.params.names.items()
            for name, path in zip(names, snakemake.input[f"{test_set}_{group}_ranks"])
        }
        for test_set in snakemake.params.sets
    }
    pairs = [tuple(p) for p in snakemake.params.pairs]
    table, text = set_comparisons(
        per_query, snakemake.params.groups, pairs, snakemake.params.shares, snakemake.params.resamples
    )
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
