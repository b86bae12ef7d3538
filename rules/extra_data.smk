# The full setting's extra stage-1 sets (stage1.train_on: all): AudioCaps train (captions
# downloaded or local, audio from the user's folder) and WavCaps (downloaded from its hub, without
# the clips of the DCASE exclusion list), each decoded to HDF5 with its caption table; AudioCaps
# test, a further test set (evaluation.sets), likewise.

# how an extra set is decoded: ClothoV2's rate and bad-clip policy, its own storage and missing-file tolerance
EXTRA_SET_SETTINGS = {
    name: {**decoding_settings(config[name]), "file_name": config[name].get("file_name")}
    for name in ("audiocaps", "wavcaps")
    if name in config
}
EXTRA_SET_FILES = {
    "audio": "audio.h5",
    "captions": "captions.parquet",
    "skipped": "skipped_clips.csv",
    "missing": "missing_clips.csv",
}


if "audiocaps" in config:
    # the caption file of each split; test's clips never train (left out of AudioCaps train and
    # WavCaps AudioSet_SL where AudioCaps test is a test set)
    AUDIOCAPS_CAPTIONS = {
        "train": config["audiocaps"]["captions_csv"],
        "test": config["audiocaps"]["test_captions_csv"],
    }

    if DEMO:

        rule generate_demo_audiocaps_test:
            output:
                AUDIOCAPS_CAPTIONS["test"],
            log:
                log_file("generate_demo_audiocaps", "test"),
            conda:
                CONDA_ENV
            params:
                set="audiocaps_test",
                spec=settings_without("demo", "extra"),
                extra={"audiocaps_test_clips": config["demo"]["extra"]["audiocaps_test_clips"]},
                audio_dir=config["audiocaps"]["audio_dir"],
                file_name=lambda wildcards: config["audiocaps"]["file_name"],  # a template: not expanded
                code=code_of("generate_demo_extra"),
            script:
                "../workflow_scripts/generate_demo_extra.py"

        use rule generate_demo_audiocaps_test as generate_demo_audiocaps with:
            # train, a few of its rows naming test clips (which the exclusion leaves out)
            input:
                test=AUDIOCAPS_CAPTIONS["test"],
            output:
                AUDIOCAPS_CAPTIONS["train"],
            log:
                log_file("generate_demo_audiocaps", "train"),
            params:
                set="audiocaps",
                spec=settings_without("demo", "extra"),
                extra={
                    k: config["demo"]["extra"][k] for k in ("audiocaps_clips", "audiocaps_missing", "audiocaps_leaked")
                },
                audio_dir=config["audiocaps"]["audio_dir"],
                file_name=lambda wildcards: config["audiocaps"]["file_name"],
                code=code_of("generate_demo_extra"),

    else:
        for audiocaps_split, url_key in (("train", "captions_url"), ("test", "test_captions_url")):
            if config["audiocaps"][url_key]:

                rule:
                    name:
                        f"download_audiocaps_{audiocaps_split}_captions"
                    output:
                        AUDIOCAPS_CAPTIONS[audiocaps_split],
                    log:
                        log_file(f"download_audiocaps_{audiocaps_split}_captions"),
                    conda:
                        CONDA_ENV
                    params:
                        url=config["audiocaps"][url_key],
                        md5=config["audiocaps"][url_key.replace("url", "md5")],
                        download=config["download"],
                        code=code_of("download_file"),
                    script:
                        "../workflow_scripts/download_file.py"

    rule prepare_audiocaps:
        input:
            captions=AUDIOCAPS_CAPTIONS["train"],
            held_out=HELD_OUT_CAPTIONS,
        output:
            **{key: f"{OUT}/data/audiocaps/train/{name}" for key, name in EXTRA_SET_FILES.items()},
            excluded=f"{OUT}/data/audiocaps/train/excluded_clips.csv",
        log:
            log_file("prepare_audiocaps", "train"),
        benchmark:
            benchmark_file("prepare_audiocaps", "train")
        conda:
            CONDA_ENV
        threads: config["audiocaps"]["decode_threads"]
        resources:
            mem_mb=4000,
            runtime=600,
        params:
            set="audiocaps",
            audio_dir=config["audiocaps"]["audio_dir"],
            settings=EXTRA_SET_SETTINGS["audiocaps"],
            code=code_of("prepare_extra_set"),
        script:
            "../workflow_scripts/prepare_extra_set.py"

    use rule prepare_audiocaps as prepare_audiocaps_test with:
        input:
            captions=AUDIOCAPS_CAPTIONS["test"],
            held_out=[],
        output:
            **test_set_files("audiocaps", EXTRA_SET_FILES),
        log:
            log_file("prepare_audiocaps", "test"),
        benchmark:
            benchmark_file("prepare_audiocaps", "test")


if "wavcaps" in config:
    WAVCAPS_CAPTIONS = config["wavcaps"].get("caption_files", {})
    WAVCAPS_EXCLUSION = wavcaps_file(wavcaps.EXCLUSION_FILE)

    if DEMO:

        rule generate_demo_wavcaps:
            input:
                clotho_metadata=[raw_file(clotho.metadata_csv(split)) for split in SPLITS],
                held_out=HELD_OUT_CAPTIONS if wavcaps.YOUTUBE_SOURCE in config["wavcaps"]["sources"] else [],
            output:
                [
                    wavcaps_file(name)
                    for source in config["wavcaps"]["sources"]
                    for name in wavcaps.release_files(source, WAVCAPS_CAPTIONS)
                ],
                exclusion=WAVCAPS_EXCLUSION,
            log:
                log_file("generate_demo_wavcaps"),
            conda:
                CONDA_ENV
            params:
                set="wavcaps",
                spec=settings_without("demo", "extra"),
                extra={
                    k: v
                    for k, v in config["demo"]["extra"].items()
                    if k.startswith("wavcaps")
                    or (k == "audiocaps_leaked" and wavcaps.YOUTUBE_SOURCE in config["wavcaps"]["sources"])
                },
                caption_files=WAVCAPS_CAPTIONS,
                code=code_of("generate_demo_extra"),
            script:
                "../workflow_scripts/generate_demo_extra.py"

    else:
        for wavcaps_source in config["wavcaps"]["sources"]:

            rule:
                # one rule per source: the caption file's name differs between sources
                name:
                    f"download_wavcaps_{wavcaps_source}"
                output:
                    [wavcaps_file(name) for name in wavcaps.release_files(wavcaps_source, WAVCAPS_CAPTIONS)],
                log:
                    log_file("download_wavcaps", wavcaps_source),
                benchmark:
                    benchmark_file("download_wavcaps", wavcaps_source)
                conda:
                    CONDA_ENV
                resources:
                    runtime=2880,
                params:
                    source=wavcaps_source,
                    base_url=config["wavcaps"]["base_url"],
                    caption_files=WAVCAPS_CAPTIONS,
                    download=config["download"],
                    code=code_of("download_wavcaps"),
                script:
                    "../workflow_scripts/download_wavcaps.py"

        rule download_wavcaps_exclusion:
            output:
                WAVCAPS_EXCLUSION,
            log:
                log_file("download_wavcaps_exclusion"),
            conda:
                CONDA_ENV
            params:
                url=config["wavcaps"]["exclusion_url"],
                md5=config["wavcaps"]["exclusion_md5"],
                download=config["download"],
                code=code_of("download_file"),
            script:
                "../workflow_scripts/download_file.py"

    rule prepare_wavcaps:
        input:
            captions=lambda wildcards: wavcaps_file(wavcaps.json_file(wildcards.source, WAVCAPS_CAPTIONS)),
            parts=lambda wildcards: wavcaps_file(wavcaps.parts_file(wildcards.source)),
            exclusion=lambda wildcards: [WAVCAPS_EXCLUSION] if wildcards.source == wavcaps.EXCLUDED_SOURCE else [],
            held_out=lambda wildcards: HELD_OUT_CAPTIONS if wildcards.source == wavcaps.YOUTUBE_SOURCE else [],
        output:
            **{key: f"{OUT}/data/wavcaps/{{source}}/{name}" for key, name in EXTRA_SET_FILES.items()},
            excluded=f"{OUT}/data/wavcaps/{{source}}/excluded_clips.csv",
        log:
            log_file("prepare_wavcaps", "{source}"),
        benchmark:
            benchmark_file("prepare_wavcaps", "{source}")
        wildcard_constraints:
            source="|".join(config["wavcaps"]["sources"]),
        conda:
            CONDA_ENV
        threads: config["wavcaps"]["decode_threads"]
        resources:
            mem_mb=6000,
            runtime=2880,
        params:
            set="wavcaps",
            settings=EXTRA_SET_SETTINGS["wavcaps"],
            code=code_of("prepare_extra_set"),
        script:
            "../workflow_scripts/prepare_extra_set.py"


if "extra_tables" in config:

    rule prepare_extra_table:
        # an extra set from a folder and a manifest: its development rows, less any file that is also
        # one of the main dataset's validation or evaluation clips (listed in excluded_clips.csv)
        input:
            manifest=lambda wildcards: config["extra_tables"][wildcards.name]["manifest"],
            main=[] if SOURCE is None else SOURCE.inputs(),
        output:
            **{key: f"{OUT}/data/tables/{{name}}/{name}" for key, name in EXTRA_SET_FILES.items()},
            excluded=f"{OUT}/data/tables/{{name}}/excluded_clips.csv",
        log:
            log_file("prepare_extra_table", "{name}"),
        benchmark:
            benchmark_file("prepare_extra_table", "{name}")
        wildcard_constraints:
            name="|".join(config["extra_tables"]),
        conda:
            CONDA_ENV
        threads: config["data"]["decode_threads"]
        resources:
            mem_mb=4000,
            runtime=600,
        params:
            settings=lambda wildcards: config["extra_tables"][wildcards.name],
            decoding=lambda wildcards: decoding_settings(config["extra_tables"][wildcards.name]),
            main=(
                None
                if SOURCE is None
                else {"source": SOURCE.name, "settings": settings_without(SOURCE.name, "relevance")}
            ),
            code=code_of("prepare_extra_table"),
        script:
            "../workflow_scripts/prepare_extra_table.py"
