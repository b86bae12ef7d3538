import pandas as pd

from audioretrieval.data.tables import write_table_atomically
from audioretrieval.files import write_report_page, write_text_atomically
from audioretrieval.summary import read_metrics, summary_markdown, summary_table
from audioretrieval.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    best, last = (
        {group: {name: read_metrics(path) for name, path in zip(names, snakemake.input[f"{group}{suffix}_metrics"])}
         for group, names in snakemake.params.names[weights].items()}
        for weights, suffix in (("best", ""), ("last", "_last"))
    )
    table = summary_table(best, last, snakemake.params.stage2_jobs, snakemake.params.reference)
    write_table_atomically(table, snakemake.output.table)
    text = ("## Text-to-audio retrieval on the evaluation split (%)\n\nweights: each run's best epoch by validation "
            "mAP@10, or its last epoch (the seed tests the weights after the last epoch)\n\n" + summary_markdown(table))
    if snakemake.input.quality:
        quality = pd.read_csv(snakemake.input.quality[0])
        text += ("\n## Estimated correspondences of the training split against the demo's truth\n\n"
                 + quality.to_markdown(index=False, floatfmt=".4f") + "\n")
        mass = pd.read_csv(snakemake.input.target_mass[0])
        text += ("\n## Where the targets' mass goes in a training batch (share of each caption's target)\n\n"
                 + mass.to_markdown(index=False, floatfmt=".3f") + "\n")
    write_text_atomically(text, snakemake.output.markdown)
    write_report_page(text, snakemake.output.page)
    log.info("\n%s", text)
