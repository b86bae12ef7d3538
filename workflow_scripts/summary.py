import pandas as pd

from audioretrieval.evaluation.sets import stacked
from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report.pages import write_report_page
from audioretrieval.report.summary import read_metrics, summary_table, summary_text


def metrics_of(test_set: str, weights: str, suffix: str) -> dict:
    return {
        group: {
            name: read_metrics(path)
            for name, path in zip(names, snakemake.input[f"{test_set}_{group}{suffix}_metrics"])
        }
        for group, names in snakemake.params.names[test_set][weights].items()
    }


with logged_to(snakemake.log[0]) as log:
    main = next(iter(snakemake.params.names))
    table = stacked(
        {
            test_set: summary_table(
                metrics_of(test_set, "best", ""),
                metrics_of(test_set, "last", "_last"),
                snakemake.params.stage2_jobs,
                snakemake.params.reference if test_set == main else [],  # published on the main set
            )
            for test_set in snakemake.params.names
        }
    )
    demo_tables = [
        pd.read_csv(files[0]) if files else None for files in (snakemake.input.quality, snakemake.input.target_mass)
    ]
    text = summary_text(table, *demo_tables)
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
