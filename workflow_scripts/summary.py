import pandas as pd

from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report.pages import write_report_page
from audioretrieval.report.summary import read_metrics, summary_table, summary_text

with logged_to(snakemake.log[0]) as log:
    best, last = (
        {
            group: {name: read_metrics(path) for name, path in zip(names, snakemake.input[f"{group}{suffix}_metrics"])}
            for group, names in snakemake.params.names[weights].items()
        }
        for weights, suffix in (("best", ""), ("last", "_last"))
    )
    table = summary_table(best, last, snakemake.params.stage2_jobs, snakemake.params.reference)
    demo_tables = [
        pd.read_csv(files[0]) if files else None for files in (snakemake.input.quality, snakemake.input.target_mass)
    ]
    text = summary_text(table, *demo_tables)
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
