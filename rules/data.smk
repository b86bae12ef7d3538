# The data stage: release files (generated for the demo, or downloaded and verified) -> 32 kHz HDF5 +
# caption tables; or, for a dataset source (data.source: table, ...), its manifest and audio -> the same.


if DEMO:

    rule generate_demo_dataset:
        output:
            [raw_file(name) for split in SPLITS for name in clotho.release_files(split)],
            [raw_file(f"demo_{table}_{split}.parquet") for split in SPLITS for table in ("clips", "captions")],
            [truth_file(split) for split in SPLITS],
        log:
            log_file("generate_demo_dataset"),
        benchmark:
            benchmark_file("generate_demo_dataset")
        conda:
            CONDA_ENV
        threads: 2
        resources:
            mem_mb=3000,
        params:
            spec=settings_without("demo", "extra"),  # the stand-ins' sizes (demo.extra) are not the generator's
            code=code_of("generate_demo_dataset"),
        script:
            "../workflow_scripts/generate_demo_dataset.py"

elif SOURCE is None:

    rule download_clotho:
        output:
            raw_file("{release_file}"),
        log:
            log_file("download_clotho", "{release_file}"),
        benchmark:
            benchmark_file("download_clotho", "{release_file}")
        wildcard_constraints:
            release_file="|".join(re.escape(name) for name in clotho.MD5),
        conda:
            CONDA_ENV
        resources:
            runtime=240,
        params:
            download=config.get("download"),
            md5=lambda wildcards: clotho.expected_md5(wildcards.release_file, config["data"].get("md5")),
            code=code_of("download_clotho"),
        script:
            "../workflow_scripts/download_clotho.py"

    rule verify_release_file:
        # every release file, downloaded or put in raw_dir by hand, against its expected MD5; the
        # stamp keeps it from being checked again while the file is unchanged
        input:
            raw_file("{release_file}"),
        output:
            verified_file("{release_file}"),
        log:
            log_file("verify_release_file", "{release_file}"),
        benchmark:
            benchmark_file("verify_release_file", "{release_file}")
        wildcard_constraints:
            release_file="|".join(re.escape(name) for name in clotho.MD5),
        conda:
            CONDA_ENV
        params:
            md5=lambda wildcards: clotho.expected_md5(wildcards.release_file, config["data"].get("md5")),
            hint="a partial download or copy? Delete it to download it again; for a mirror whose files differ, "
            "set data.md5 to their MD5s",
            code=code_of("verify_release_file"),
        script:
            "../workflow_scripts/verify_release_file.py"


if SOURCE is not None:

    rule prepare_source_split:
        # a dataset source's split: its files decoded, its captions tabled (a manifest edit reruns it)
        input:
            SOURCE.inputs(),
        output:
            audio=data_file("{split}", "audio.h5"),
            captions=data_file("{split}", "captions.parquet"),
            skipped=data_file("{split}", "skipped_clips.csv"),
            missing=data_file("{split}", "missing_clips.csv"),
        log:
            log_file("prepare_source_split", "{split}"),
        benchmark:
            benchmark_file("prepare_source_split", "{split}")
        priority: 4
        conda:
            CONDA_ENV
        threads: config["data"]["decode_threads"]
        resources:
            mem_mb=4000,
            runtime=600,
        params:
            source=config["data"]["source"],
            settings=settings_without(SOURCE.name, "relevance"),  # read by evaluation
            decoding=decoding_settings(SOURCE.settings),
            code=code_of("prepare_source_split"),
        script:
            "../workflow_scripts/prepare_source_split.py"

else:

    rule decode_audio:
        input:
            archive=raw_file("clotho_audio_{split}.7z"),
            verified=verification_of("clotho_audio_{split}.7z"),
        output:
            audio=data_file("{split}", "audio.h5"),
            skipped=data_file("{split}", "skipped_clips.csv"),
        log:
            log_file("decode_audio", "{split}"),
        benchmark:
            benchmark_file("decode_audio", "{split}")
        priority: 4  # stage 1 waits for the data
        conda:
            CONDA_ENV
        threads: config["data"]["decode_threads"]
        resources:
            mem_mb=4000,
            runtime=120,
        params:
            sample_rate=config["data"]["sample_rate"],
            sample_format=config["data"]["sample_format"],
            on_bad_clip=config["data"]["on_bad_clip"],
            code=code_of("decode_audio"),
        script:
            "../workflow_scripts/decode_audio.py"

    rule caption_table:
        input:
            captions=raw_file("clotho_captions_{split}.csv"),
            verified=verification_of("clotho_captions_{split}.csv"),
            audio=rules.decode_audio.output.audio,
            skipped=rules.decode_audio.output.skipped,
        output:
            data_file("{split}", "captions.parquet"),
        log:
            log_file("caption_table", "{split}"),
        benchmark:
            benchmark_file("caption_table", "{split}")
        priority: 4
        conda:
            CONDA_ENV
        params:
            code=code_of("caption_table"),
        script:
            "../workflow_scripts/caption_table.py"
