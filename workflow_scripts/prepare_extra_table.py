from audioretrieval.data.source import held_out_files, prepare_extra
from audioretrieval.data.sources.table import TableSource
from audioretrieval.pipeline.workflow import logged_to

with logged_to(snakemake.log[0]) as log:
    name = snakemake.wildcards.name
    main = snakemake.params.main
    summary = prepare_extra(
        TableSource(snakemake.params.settings, f"extra_tables.{name}").read(),
        held_out_files(main["source"], main["settings"]) if main else frozenset(),
        snakemake.params.decoding,
        {key: snakemake.output[key] for key in ("audio", "captions", "skipped", "missing", "excluded")},
        threads=snakemake.threads,
    )
    log.info("decoded %d clips, skipped %d, missing %d", summary.decoded, len(summary.skipped), len(summary.missing))
