from audioretrieval.correspondences.ensemble import build_targets
from audioretrieval.evaluation.score import score_file, write_scores
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    build_targets(list(snakemake.input.members), snakemake.output.embeddings)
    metrics, per_query = score_file(snakemake.output.embeddings, next(iter(snakemake.input.relevance), None))
    write_scores(metrics, per_query, snakemake.output.metrics, snakemake.output.ranks)
    log.info("%s", metrics)
