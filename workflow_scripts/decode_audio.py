from audioretrieval.data.decode import decode_archive
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    summary = decode_archive(
        snakemake.input.archive,
        snakemake.output.audio,
        snakemake.output.skipped,
        sample_rate=snakemake.params.sample_rate,
        sample_format=snakemake.params.sample_format,
        threads=snakemake.threads,
        on_bad_clip=snakemake.params.on_bad_clip,
    )
    log.info("decoded %d clips, skipped %d", summary.decoded, len(summary.skipped))
