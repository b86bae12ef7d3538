# Stage 1: one contrastive training run per seed, each its own job and directory: seed{N} of
# model.audio, {encoder}-seed{N} of another audio encoder (stage1.encoders, ensemble members only).

# The dataset's development split first, then the extra sets (stage1.train_on: all)
TRAIN_SETS = [{"audio": data_file("development", "audio.h5"), "captions": data_file("development", "captions.parquet")}]
if config["stage1"]["train_on"] == "all":
    TRAIN_SETS += [rules.prepare_audiocaps.output] if "audiocaps" in config else []
    TRAIN_SETS += [
        {key: rules.prepare_wavcaps.output[key].format(source=source) for key in ("audio", "captions")}
        for source in config.get("wavcaps", {}).get("sources", [])
    ]
    TRAIN_SETS += [
        {key: rules.prepare_extra_table.output[key].format(name=name) for key in ("audio", "captions")}
        for name in config.get("extra_tables", {})
    ]


rule build_tokenizer:
    input:
        captions=data_file("development", "captions.parquet"),
    output:
        TOKENIZER_FILES,
    log:
        log_file("build_tokenizer"),
    benchmark:
        benchmark_file("build_tokenizer")
    conda:
        CONDA_ENV
    params:
        vocab_size=config["model"]["text"]["tokenizer_vocab_size"],
        code=code_of("build_tokenizer"),
    script:
        "../workflow_scripts/build_tokenizer.py"


if TEXT_STATES:

    rule text_states:
        input:
            captions=data_file("{split}", "captions.parquet"),
        output:
            text_states_file("{split}"),
        log:
            log_file("text_states", "{split}"),
        benchmark:
            benchmark_file("text_states", "{split}")
        priority: 4  # stage 1 waits for them
        conda:
            CONDA_ENV
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            text=config["model"]["text"],
            code=code_of("text_states"),
        script:
            "../workflow_scripts/text_states.py"


rule train_stage1:
    input:
        train_audio=[files["audio"] for files in TRAIN_SETS],
        train_captions=[files["captions"] for files in TRAIN_SETS],
        val_audio=data_file("validation", "audio.h5"),
        val_captions=data_file("validation", "captions.parquet"),
        tokenizer=tokenizer_input(),
        text_states=text_states_input("development", "validation"),
        val_relevance=validation_relevance_input(config["train"]),
    output:
        **trained_files(model_dir("stage1", "{run}")),
    log:
        log_file("train_stage1", "{run}"),
    benchmark:
        benchmark_file("train_stage1", "{run}")
    wildcard_constraints:
        run=STAGE1_RUN_NAME,
    priority: 4  # the chain waits for stage 1: start it before exports and evaluations when a core frees up
    conda:
        CONDA_ENV
    threads: TRAINING_THREADS
    resources:
        **gpu_resources(GPUS),
        mem_mb=16000,
        runtime=240 if config["stage1"]["train_on"] == "clothov2" else 2880,  # the paper: 35 h with AudioCaps + WavCaps
    params:
        run=lambda wildcards: {"seed": study.seed_of(wildcards.run)},
        model=lambda wildcards: study.run_model(config, wildcards.run),
        train=config["train"],
        gpus=GPUS,
        code=code_of("train"),
    script:
        "../workflow_scripts/train.py"
