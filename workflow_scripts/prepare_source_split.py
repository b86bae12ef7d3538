from audioretrieval.data.source import checked, prepare_split, source_of
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    source = source_of(snakemake.params.source, snakemake.params.settings)
    manifest = checked(source.read())
    summary = prepare_split(
        manifest,
        snakemake.wildcards.split,
        snakemake.params.decoding,
        {name: snakemake.output[name] for name in ("audio", "captions", "skipped", "missing")},
        threads=snakemake.threads,
    )
    log.info("decoded %d clips, skipped %d, missing %d", summary.decoded, len(summary.skipped), len(summary.missing))
