from audioretrieval.data import audiocaps
from audioretrieval.data.prepare import prepare_audiocaps, prepare_wavcaps
from audioretrieval.pipeline.workflow import logged_to

out = {name: snakemake.output[name] for name in snakemake.output.keys()}  # audio, captions, skipped, missing, ...
with logged_to(snakemake.log[0]) as log:
    held_out = audiocaps.youtube_ids(*snakemake.input.held_out)  # AudioCaps test's
    if snakemake.params.set == "audiocaps":
        summary = prepare_audiocaps(
            snakemake.input.captions,
            snakemake.params.audio_dir,
            snakemake.params.settings,
            out,
            threads=snakemake.threads,
            held_out=held_out,
        )
    else:
        summary = prepare_wavcaps(
            snakemake.wildcards.source,
            snakemake.input.captions,
            snakemake.input.parts,
            (snakemake.input.exclusion or [None])[0],
            snakemake.params.settings,
            out,
            threads=snakemake.threads,
            held_out=held_out,
        )
    log.info("decoded %d clips, skipped %d, missing %d", summary.decoded, len(summary.skipped), len(summary.missing))
