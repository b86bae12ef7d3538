# Stage 1: one contrastive training run per seed, each its own job and directory.

STAGE1_TRAINING_SETS = stage1_training_sets()


rule build_tokenizer:
    input:
        captions=data_file("development", "captions.parquet"),
    output:
        TOKENIZER_FILES,
    params:
        vocab_size=config["model"]["text"]["tokenizer_vocab_size"],
        code=code_of("build_tokenizer"),
    log:
        log_file("build_tokenizer"),
    benchmark:
        benchmark_file("build_tokenizer")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/build_tokenizer.py"


rule train_stage1:
    input:
        train_audio=STAGE1_TRAINING_SETS["audio"],
        train_captions=STAGE1_TRAINING_SETS["captions"],
        val_audio=data_file("validation", "audio.h5"),
        val_captions=data_file("validation", "captions.parquet"),
        tokenizer=tokenizer_input(),
    output:
        best=f"{OUT}/stage1/{{run}}/best.pt",
        last=f"{OUT}/stage1/{{run}}/last.pt",
        log_table=f"{OUT}/stage1/{{run}}/log.csv",
    wildcard_constraints:
        run=r"seed\d+",
    params:
        seed=seed_of_run,
        model=config["model"],
        train=config["train"],
        gpus=config["stage1"]["gpus"],
        code=code_of("train_stage1"),
    threads: config["train"]["num_workers"] + 1
    resources:
        mem_mb=16000,
        runtime=240 if config["stage1"]["train_on"] == "clothov2" else 2880,  # the paper: 35 h with AudioCaps + WavCaps
        **gpu_resources(config["stage1"]["gpus"]),
    log:
        log_file("train_stage1", "{run}"),
    benchmark:
        benchmark_file("train_stage1", "{run}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/train_stage1.py"
