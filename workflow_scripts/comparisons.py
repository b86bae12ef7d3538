import pandas as pd

from audioretrieval.compare import comparisons_markdown, comparisons_table, realised_share
from audioretrieval.data.tables import write_table_atomically
from audioretrieval.files import write_report_page, write_text_atomically
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    per_query = {
        name: pd.read_parquet(path)
        for group in ("stage1", "stage2")
        for name, path in zip(snakemake.params.names[group], snakemake.input[f"{group}_ranks"])
    }
    metrics = [m for m in ("ap@10", "dcase2025_ap@10") if all(m in t for t in per_query.values())]
    groups = snakemake.params.groups
    table = comparisons_table(per_query, groups, [tuple(p) for p in snakemake.params.pairs], metrics,
                              snakemake.params.resamples)
    write_table_atomically(table, snakemake.output.table)
    text = comparisons_markdown(table, snakemake.params.resamples)
    for estimated, control, oracle in snakemake.params.shares:
        shares = ", ".join(f"{realised_share(per_query, groups, estimated, control, oracle, m):.2f} in mean {m}"
                           for m in metrics) + " (nan: the oracle does not beat the control)"
        text += (f"\nShare of the possible gain over the control that {estimated}'s estimated targets realise, "
                 f"({estimated} - {control}) / ({oracle} - {control}): {shares}\n")
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
