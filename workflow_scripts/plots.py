import pandas as pd

from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report import plots

out = snakemake.output
with logged_to(snakemake.log[0]):
    logs = {name: pd.read_csv(path) for name, path in zip(snakemake.params.names, snakemake.input.logs)}
    plots.save_figure(plots.training_curves(logs), out.training_curves_png, out.training_curves_svg)
    plots.save_figure(plots.metric_bars(pd.read_csv(snakemake.input.summary)), out.metrics_png, out.metrics_svg)
    truth = pd.read_parquet(snakemake.input.truth[0]) if snakemake.input.truth else None
    figure = plots.correspondence_examples(
        snakemake.input.targets, snakemake.params.example_queries, snakemake.params.example_top_k, truth
    )
    plots.save_figure(figure, out.correspondence_examples_png, out.correspondence_examples_svg)
    figure = plots.comparison_intervals(pd.read_csv(snakemake.input.comparisons))
    plots.save_figure(figure, out.comparisons_png, out.comparisons_svg)
