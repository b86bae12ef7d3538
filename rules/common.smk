# Paths, wildcards and helpers shared by every rule file.
import hashlib
import os
import re
from pathlib import Path

from audioretrieval.config import check_config
from audioretrieval.data import clotho

check_config(config)

OUT = config["out_dir"]
RAW = config["data"]["raw_dir"]
SPLITS = list(clotho.SPLITS)
LIBRARY = Path(workflow.basedir) / "src" / "audioretrieval"
CONDA_ENV = "../envs/pipeline.yaml"


wildcard_constraints:
    split="|".join(SPLITS),


def data_file(split, name):
    """A decoded-data product of one ClothoV2 split."""
    return f"{OUT}/data/clothov2/{split}/{name}"


def raw_file(name):
    """A file of the ClothoV2 release (downloaded, or generated for the demo)."""
    return f"{RAW}/{name}"


def log_file(rule_name, *parts):
    return os.path.join(OUT, "logs", rule_name, *parts) + ".log"


def benchmark_file(rule_name, *parts):
    return os.path.join(OUT, "benchmarks", rule_name, *parts) + ".tsv"


def library_code(*modules):
    """A digest of library modules a rule runs, passed as a param so that editing them reruns the rule.

    Snakemake tracks only the script file of a script rule; content (not modification time)
    decides, so touching a module reruns nothing.
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update((LIBRARY.joinpath(*module.split(".")).with_suffix(".py")).read_bytes())
    return digest.hexdigest()[:16]


def data_outputs():
    """Decoded audio and caption tables of every split, and the release's metadata files."""
    decoded = [data_file(split, name) for split in SPLITS for name in ("audio.h5", "captions.parquet")]
    return decoded + [raw_file(clotho.metadata_csv(split)) for split in SPLITS]


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


def embeddings_of(seed):
    return f"{stage1_dir(f'seed{seed}')}/embeddings/development.h5"


def ensemble_members(wildcards):
    return [embeddings_of(seed) for seed in config["correspondences"]["ensembles"][wildcards.ensemble]]


def targets_file(ensemble):
    return f"{OUT}/correspondences/{ensemble}/targets.h5"


def stage2_run(wildcards):
    return next(run for run in config["stage2"]["runs"] if run["name"] == wildcards.name)


def stage2_init(wildcards):
    seed = stage2_run(wildcards)["init"]
    return f"{stage1_dir(f'seed{seed}')}/best.pt"


def stage2_targets(wildcards):
    return targets_file(stage2_run(wildcards)["ensemble"])


def stage2_outputs():
    names = [run["name"] for run in config["stage2"]["runs"]]
    return [f"{OUT}/stage2/{name}/{file}" for name in names for file in ("best.pt", "last.pt", "log.csv")]


def correspondence_outputs():
    """Targets of every ensemble, and on the demo (which knows the truth) the quality table."""
    outputs = [targets_file(name) for name in config["correspondences"]["ensembles"]]
    if config["data"]["source"] == "demo":
        outputs += [f"{OUT}/correspondences/quality.csv", f"{OUT}/correspondences/quality.md"]
    return outputs


def stage2_train_settings():
    return {**config["train"], **config["stage2"]["train"]}


def stage2_dir(name):
    return f"{OUT}/stage2/{name}"


def ensemble_dir(name):
    return f"{OUT}/correspondences/{name}"


def evaluation_file(model_dir, name):
    """An evaluation product (embeddings.h5, metrics.json, ranks.parquet) of a model or ensemble."""
    return f"{model_dir}/evaluation/{name}"


RELEVANCE_FILE = "dcase2025_task6_metadata_eval.csv"


def relevance_input():
    """The correspondence table of the evaluation captions: the demo's truth, the configured download, or none."""
    if config["data"]["source"] == "demo":
        return [raw_file("demo_correspondences_evaluation.parquet")]
    return [raw_file(RELEVANCE_FILE)] if config["evaluation"]["relevance_url"] else []


def ensemble_evaluation_members(wildcards):
    seeds = config["correspondences"]["ensembles"][wildcards.ensemble]
    return [evaluation_file(stage1_dir(f"seed{seed}"), "embeddings.h5") for seed in seeds]


def model_metrics():
    """Metrics files by group (stage 1, ensembles, stage 2), each a dict name -> path."""
    return {
        "stage1": {run: evaluation_file(stage1_dir(run), "metrics.json") for run in stage1_runs()},
        "ensembles": {name: evaluation_file(ensemble_dir(name), "metrics.json") for name in config["correspondences"]["ensembles"]},
        "stage2": {run["name"]: evaluation_file(stage2_dir(run["name"]), "metrics.json") for run in config["stage2"]["runs"]},
    }


def evaluation_outputs():
    return [path for group in model_metrics().values() for path in group.values()]


def example_ensemble():
    """The ensemble whose estimates the report shows: the first stage-2 run's, else the first one."""
    runs = config["stage2"]["runs"]
    return runs[0]["ensemble"] if runs else next(iter(config["correspondences"]["ensembles"]))


def training_logs():
    """log.csv of every training run, by the name the report gives it."""
    logs = {f"stage 1 {run}": f"{stage1_dir(run)}/log.csv" for run in stage1_runs()}
    logs.update({f"stage 2 {run['name']}": f"{stage2_dir(run['name'])}/log.csv" for run in config["stage2"]["runs"]})
    return logs


FIGURES = ("training_curves", "metrics", "correspondence_examples")


def report_file(name):
    return f"{OUT}/report/{name}"


def report_outputs():
    figures = [report_file(f"{figure}.{ext}") for figure in FIGURES for ext in ("png", "svg")]
    return [report_file("summary.csv"), report_file("summary.md")] + figures
