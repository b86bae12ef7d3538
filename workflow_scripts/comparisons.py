import pandas as pd

from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report.compare import COMPARED_METRICS, comparisons_table, comparisons_text
from audioretrieval.report.pages import write_report_page

with logged_to(snakemake.log[0]) as log:
    per_query = {
        name: pd.read_parquet(path)
        for group, names in snakemake.params.names.items()
        for name, path in zip(names, snakemake.input[f"{group}_ranks"])
    }
    metrics = [m for m in COMPARED_METRICS if all(m in t for t in per_query.values())]
    groups, pairs = snakemake.params.groups, [tuple(p) for p in snakemake.params.pairs]
    table = comparisons_table(per_query, groups, pairs, metrics, snakemake.params.resamples)
    text = comparisons_text(per_query, groups, table, snakemake.params.shares, snakemake.params.resamples)
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
