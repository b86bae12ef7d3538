import pandas as pd

from audioretrieval.files import write_table_atomically, write_text_atomically
from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report import plots
from audioretrieval.report.pages import write_report_page
from audioretrieval.report.sweep import set_maps

with logged_to(snakemake.log[0]) as log:
    params, out = snakemake.params, snakemake.output
    tables = {
        test_set: {world: {run: pd.read_parquet(path) for run, path in runs.items()} for world, runs in worlds.items()}
        for test_set, worlds in params.ranks.items()
    }
    qualities = {world: pd.read_csv(path) for world, path in params.quality.items()}
    masses = {world: pd.read_csv(path) for world, path in params.mass.items()}
    table, text = set_maps(params.points, tables, qualities, masses, params.axes, params.resamples)
    write_table_atomically(table, out.table)
    write_text_atomically(text, out.markdown)
    write_report_page(text, out.page)
    main = table[table["set"] == next(iter(tables))].reset_index(drop=True)
    plots.save_figure(plots.map_figure(main), out.png, out.svg)  # the main test set's
    log.info("\n%s", text)
