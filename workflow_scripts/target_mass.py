import pandas as pd

from audioretrieval.correspondences.target_rules import TargetRule
from audioretrieval.correspondences.truth import target_mass
from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    truth = pd.read_parquet(snakemake.input.truth)
    rows = []
    for row in snakemake.params.rows:
        mass = target_mass(
            row["files"]["targets"],
            truth,
            snakemake.params.batch_size,
            TargetRule.of(row["rule_settings"], row["tau"]),
            (row["dist_weight"], row["sup_weight"]),
            {key: path for key, path in row["files"].items() if key != "targets"},
        )
        rows.append({key: row[key] for key in ("ensemble", "tau", "rule", "dist_weight", "sup_weight")} | mass)
    table = pd.DataFrame(rows)
    write_table_atomically(table, snakemake.output.table)
    write_text_atomically(table.to_markdown(index=False, floatfmt=".3f") + "\n", snakemake.output.markdown)
    log.info("\n%s", table.to_string(index=False))
