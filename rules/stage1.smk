# Stage 1: one contrastive training run per seed, each its own job and directory.


def stage1_dir(run):
    return f"{OUT}/stage1/{run}"


def stage1_runs():
    return [f"seed{seed}" for seed in config["stage1"]["seeds"]]


def seed_of_run(wildcards):
    return int(wildcards.run.removeprefix("seed"))


def tokenizer_input():
    """The tokenizer a random-init text encoder needs from the pipeline (none for a hub model)."""
    text = config["model"]["text"]
    return [] if text["name"] or text["tokenizer"] else [f"{OUT}/tokenizer"]


def stage1_outputs():
    return [f"{stage1_dir(run)}/{name}" for run in stage1_runs() for name in ("best.pt", "last.pt", "log.csv")]


def gpu_resources(gpus):
    """Resources of a job on `gpus` GPUs (none on a CPU-only configuration)."""
    return {"gpu": gpus} if gpus else {}


TRAIN_CODE = library_code(
    "train", "losses", "schedule", "metrics", "embed", "checkpoint", "distributed", "model.audio", "model.text",
    "model.dual_encoder", "data.dataset", "data.h5audio",
)


rule build_tokenizer:
    input:
        captions=data_file("development", "captions.parquet"),
    output:
        directory(f"{OUT}/tokenizer"),
    params:
        vocab_size=config["model"]["text"]["tokenizer_vocab_size"],
        code=library_code("tokenizer", "model.text"),
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
        train_audio=data_file("development", "audio.h5"),
        train_captions=data_file("development", "captions.parquet"),
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
        code=TRAIN_CODE,
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
        **gpu_resources(config["stage1"]["gpus"]),
    log:
        log_file("train_stage1", "{run}"),
    benchmark:
        benchmark_file("train_stage1", "{run}")
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/train_stage1.py"
