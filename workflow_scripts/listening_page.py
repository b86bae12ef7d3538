from audioretrieval.pipeline.workflow import logged_to
from audioretrieval.report.listening import retrieval_examples

with logged_to(snakemake.log[0]):
    retrieval_examples(
        dict(zip(snakemake.params.names, snakemake.input.embeddings)),
        snakemake.input.audio,
        next(iter(snakemake.input.relevance), None),
        snakemake.output[0],
        snakemake.params.queries,
        snakemake.params.top_k,
    )
