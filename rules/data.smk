# The data stage: release files (generated for the demo, or downloaded) -> 32 kHz HDF5 + caption tables.

DECODE_CODE = library_code("data.archive", "data.audio_io", "data.h5audio", "data.decode", "data.tables", "files")

if config["data"]["source"] == "demo":

    rule generate_demo_dataset:
        output:
            [raw_file(name) for split in SPLITS for name in clotho.release_files(split)],
            [raw_file(f"demo_{table}_{split}.parquet") for split in SPLITS for table in ("clips", "captions", "correspondences")],
        params:
            spec=config.get("demo"),
            code=library_code("data.demo", "data.clotho", "data.tables", "files"),
        threads: 2
        log:
            log_file("generate_demo_dataset"),
        benchmark:
            benchmark_file("generate_demo_dataset")
        resources:
            mem_mb=3000,
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/generate_demo_dataset.py"

else:

    rule download_clotho:
        output:
            raw_file("{release_file}"),
        wildcard_constraints:
            release_file="|".join(re.escape(name) for name in clotho.MD5),
        params:
            download=config.get("download"),
            code=library_code("data.download"),
        log:
            log_file("download_clotho", "{release_file}"),
        benchmark:
            benchmark_file("download_clotho", "{release_file}")
        resources:
            runtime=240,
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/download_clotho.py"


rule decode_audio:
    input:
        archive=raw_file("clotho_audio_{split}.7z"),
    output:
        audio=data_file("{split}", "audio.h5"),
        skipped=data_file("{split}", "skipped_clips.csv"),
    params:
        sample_rate=config["data"]["sample_rate"],
        sample_format=config["data"]["sample_format"],
        on_bad_clip=config["data"]["on_bad_clip"],
        code=DECODE_CODE,
    threads: config["data"]["decode_threads"]
    log:
        log_file("decode_audio", "{split}"),
    benchmark:
        benchmark_file("decode_audio", "{split}")
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/decode_audio.py"


rule caption_table:
    input:
        captions=raw_file("clotho_captions_{split}.csv"),
        audio=data_file("{split}", "audio.h5"),
        skipped=data_file("{split}", "skipped_clips.csv"),
    output:
        data_file("{split}", "captions.parquet"),
    params:
        code=library_code("data.captions", "data.h5audio", "data.tables", "files"),
    log:
        log_file("caption_table", "{split}"),
    benchmark:
        benchmark_file("caption_table", "{split}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/caption_table.py"
