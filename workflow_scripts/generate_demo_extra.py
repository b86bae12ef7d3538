from pathlib import Path

import pandas as pd

from audioretrieval.data import audiocaps
from audioretrieval.data.clotho import METADATA_ENCODING
from audioretrieval.data.demo import DemoSpec
from audioretrieval.data.demo_extra import ExtraSpec, generate_audiocaps, generate_audiocaps_test, generate_wavcaps
from audioretrieval.pipeline.workflow import logged_to

spec = DemoSpec(**snakemake.params.spec)
extra = ExtraSpec(**snakemake.params.extra)
with logged_to(snakemake.log[0]) as log:
    if snakemake.params.set == "audiocaps_test":
        stats = [
            generate_audiocaps_test(
                snakemake.output[0], snakemake.params.audio_dir, snakemake.params.file_name, spec, extra
            )
        ]
    elif snakemake.params.set == "audiocaps":  # train, some of its rows naming test clips
        stats = [
            generate_audiocaps(
                snakemake.output[0],
                snakemake.input.test,
                snakemake.params.audio_dir,
                snakemake.params.file_name,
                spec,
                extra,
            )
        ]
    else:
        clotho_ids = pd.concat(
            [pd.read_csv(path, encoding=METADATA_ENCODING) for path in snakemake.input.clotho_metadata]
        )["sound_id"]
        stats = generate_wavcaps(
            Path(snakemake.output.exclusion).parent,
            clotho_ids.astype(int).tolist(),
            spec,
            extra,
            snakemake.params.caption_files,
            sorted(audiocaps.youtube_ids(*snakemake.input.held_out)),
        )
    for row in stats:
        log.info("%s", row)
