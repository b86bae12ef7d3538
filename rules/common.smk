# Paths, wildcards and helpers shared by every rule file.
import os
import re
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
# The rules' scripts import the library of this checkout (also inside a conda environment, which
# then needs only the dependencies): src/ goes first on the path of this process and of every job.
sys.path.insert(0, SRC)

from audioretrieval.config import ORACLE, check_config, control_family, stage2_jobs
from audioretrieval.data import clotho, wavcaps
from audioretrieval.provenance import code_digest
from audioretrieval.workflow import prepend_to_pythonpath

prepend_to_pythonpath(SRC)

check_config(config)

OUT = config["out_dir"]
RAW = config["data"]["raw_dir"]
DEMO = config["data"]["source"] == "demo"
SPLITS = list(clotho.SPLITS)
LIBRARY = Path(SRC) / "audioretrieval"
SCRIPTS = Path(workflow.basedir) / "workflow_scripts"
CONDA_ENV = "../envs/pipeline.yaml"


wildcard_constraints:
    split="|".join(SPLITS),


def data_file(split, name):
    """A decoded-data product of one ClothoV2 split."""
    return f"{OUT}/data/clothov2/{split}/{name}"


def raw_file(name):
    """A file of the ClothoV2 release (downloaded, or generated for the demo)."""
    return f"{RAW}/{name}"


def verified_file(name):
    """The stamp that a release file was checked against its expected MD5."""
    return f"{OUT}/data/clothov2/verified/{name}.md5"


def verification_of(name):
    """The MD5 check of a release file, which its readers wait for (none for the generated demo)."""
    return [] if DEMO else [verified_file(name)]


def log_file(rule_name, *parts):
    return os.path.join(OUT, "logs", rule_name, *parts) + ".log"


def benchmark_file(rule_name, *parts):
    return os.path.join(OUT, "benchmarks", rule_name, *parts) + ".tsv"


def code_of(script):
    """A digest of a rule's script (workflow_scripts/<script>.py) and of every library module it
    imports, passed as a param: editing any of them reruns the rule. Content decides, not
    modification times (the profile switches Snakemake's mtime-based code trigger off)."""
    return code_digest(SCRIPTS / f"{script}.py", LIBRARY)


def data_outputs():
    """Decoded audio and caption tables of every split, and the release's metadata files (verified)."""
    decoded = [data_file(split, name) for split in SPLITS for name in ("audio.h5", "captions.parquet")]
    metadata = [clotho.metadata_csv(split) for split in SPLITS]
    return decoded + [raw_file(name) for name in metadata] + [v for name in metadata for v in verification_of(name)]


def demo_spec():
    """The demo ClothoV2's generator settings (the stand-ins' sizes, demo.extra, are not among them)."""
    return {key: value for key, value in config["demo"].items() if key != "extra"}


def wavcaps_file(name):
    """A file of the WavCaps release (downloaded, or generated for the demo)."""
    return f"{config['wavcaps']['raw_dir']}/{name}"


def extra_set_files(where):
    """Outputs of preparing an extra stage-1 set (audiocaps/train, wavcaps/{source})."""
    names = {"audio": "audio.h5", "captions": "captions.parquet", "skipped": "skipped_clips.csv",
             "missing": "missing_clips.csv"}
    return {key: f"{OUT}/data/{where}/{name}" for key, name in names.items()}


def extra_set_settings(dataset):
    """How an extra set is decoded: ClothoV2's rate and bad-clip policy, its own storage and
    missing-file tolerance."""
    settings = config[dataset]
    return {"sample_rate": config["data"]["sample_rate"], "on_bad_clip": config["data"]["on_bad_clip"],
            "sample_format": settings["sample_format"], "max_missing_fraction": settings["max_missing_fraction"],
            "file_name": settings.get("file_name")}


def extra_sets():
    """The prepared extra sets stage 1 trains on (none unless stage1.train_on is all)."""
    if config["stage1"]["train_on"] != "all":
        return []
    sets = [extra_set_files("audiocaps/train")] if "audiocaps" in config else []
    if "wavcaps" in config:
        sets += [extra_set_files(f"wavcaps/{source}") for source in config["wavcaps"]["sources"]]
    return sets


def stage1_training_sets():
    """Audio files and caption tables stage 1 trains on: ClothoV2 development first, then the extra sets."""
    sets = [{"audio": data_file("development", "audio.h5"), "captions": data_file("development", "captions.parquet")}]
    sets += extra_sets()
    return {"audio": [s["audio"] for s in sets], "captions": [s["captions"] for s in sets]}


def demo_extra_spec(dataset):
    """The stand-in sizes one extra set's demo generator uses (so that editing the other's reruns nothing here)."""
    return {key: value for key, value in config["demo"]["extra"].items() if key.startswith(dataset)}


def extra_data_outputs():
    return [path for files in extra_sets() for path in files.values()]


def stage1_dir(run):
    return f"{OUT}/stage1/{run}"


def stage1_runs():
    return [f"seed{seed}" for seed in config["stage1"]["seeds"]]


def seed_of_run(wildcards):
    return int(wildcards.run.removeprefix("seed"))


# files, not a directory: Snakemake compares checksums of files only, so touching leaves them current
TOKENIZER_FILES = [f"{OUT}/tokenizer/tokenizer.json", f"{OUT}/tokenizer/tokenizer_config.json"]


def tokenizer_input():
    """The tokenizer a random-init text encoder needs from the pipeline (none for a hub model)."""
    text = config["model"]["text"]
    return [] if text["name"] or text["tokenizer"] else TOKENIZER_FILES


def stage1_outputs():
    return [f"{stage1_dir(run)}/{name}" for run in stage1_runs() for name in ("best.pt", "last.pt", "log.csv")]


def gpu_resources(gpus):
    """Resources of a job on `gpus` GPUs (none on a CPU-only configuration); on SLURM they become
    --gpus=<n> or, with stage1.gpu_model, --gpus=<model>:<n>."""
    if not gpus:
        return {}
    model = config["stage1"]["gpu_model"]
    return {"gpu": gpus, **({"gpu_model": model} if model else {})}


def embeddings_of(seed):
    return f"{stage1_dir(f'seed{seed}')}/embeddings/development.h5"


def ensemble_members(wildcards):
    return [embeddings_of(seed) for seed in config["correspondences"]["ensembles"][wildcards.ensemble]]


def targets_file(ensemble):
    return f"{ensemble_dir(ensemble)}/targets.h5"


STAGE2_JOBS = stage2_jobs(config)


def stage2_run(wildcards):
    return next(job for job in STAGE2_JOBS if job["name"] == wildcards.name)


def stage2_training_params(wildcards):
    """What a stage-2 job's training depends on beyond its input files (the initial checkpoint and
    targets): a control's params do not mention targets it does not use."""
    job = stage2_run(wildcards)
    return {"seed": job["seed"], "dist_weight": job["dist_weight"], "sup_weight": job["sup_weight"],
            "target_tau": job["target_tau"] if job["dist_weight"] else None}


def stage2_init(wildcards):
    seed = stage2_run(wildcards)["init"]
    return f"{stage1_dir(f'seed{seed}')}/best.pt"


def stage2_targets(wildcards):
    """The targets a stage-2 job distils from (none for a control: it has no distillation term)."""
    job = stage2_run(wildcards)
    return [targets_file(job["ensemble"])] if job["dist_weight"] else []


def stage2_outputs():
    return [f"{stage2_dir(job['name'])}/{file}" for job in STAGE2_JOBS for file in ("best.pt", "last.pt", "log.csv")]


def uses_oracle():
    return any(job["ensemble"] == ORACLE and job["dist_weight"] for job in STAGE2_JOBS)


def correspondence_outputs():
    """Targets of every ensemble, and on the demo (which knows the truth) the quality and
    target-mass tables."""
    outputs = [targets_file(name) for name in config["correspondences"]["ensembles"]]
    if config["data"]["source"] == "demo":
        outputs += [f"{OUT}/correspondences/{table}.{ext}" for table in ("quality", "target_mass") for ext in ("csv", "md")]
    return outputs


def stage2_train_settings():
    return {**config["train"], **config["stage2"]["train"]}


def stage2_dir(name):
    return f"{OUT}/stage2/{name}"


def ensemble_dir(name):
    return f"{OUT}/correspondences/{name}"


def evaluation_file(model_dir, name, weights="best"):
    """An evaluation product (embeddings.h5, metrics.json, ranks.parquet) of a model's best or last
    weights, or of an ensemble (of its members' best)."""
    return f"{model_dir}/evaluation/{weights}/{name}"


RELEVANCE_FILE = "dcase2025_task6_metadata_eval.csv"


def relevance_input():
    """The correspondence table of the evaluation captions: the demo's truth, the configured download, or none."""
    if config["data"]["source"] == "demo":
        return [raw_file("demo_correspondences_evaluation.parquet")]
    return [raw_file(RELEVANCE_FILE)] if config["evaluation"]["relevance_url"] else []


def ensemble_evaluation_members(wildcards):
    seeds = config["correspondences"]["ensembles"][wildcards.ensemble]
    return [evaluation_file(stage1_dir(f"seed{seed}"), "embeddings.h5") for seed in seeds]


def multi_member_ensembles():
    """The ensembles scored as retrieval models and in the quality table: those of several members (an
    ensemble of one is its member)."""
    return [name for name, seeds in config["correspondences"]["ensembles"].items() if len(seeds) > 1]


def released_dirs():
    """The authors' released checkpoint, converted by rules/released.smk (only with a `released` section)."""
    return {"passt_roberta": f"{OUT}/released/passt_roberta"} if "released" in config else {}


def model_dirs():
    """Directories of every evaluated model by group (stage 1, ensembles, stage 2, released): name -> folder."""
    return {
        "stage1": {run: stage1_dir(run) for run in stage1_runs()},
        "ensembles": {name: ensemble_dir(name) for name in multi_member_ensembles()},
        "stage2": {job["name"]: stage2_dir(job["name"]) for job in STAGE2_JOBS},
        "released": released_dirs(),
    }


def model_metrics(weights="best"):
    """Metrics files by group: name -> path (weights "last": the training runs' last weights)."""
    groups = model_dirs() if weights == "best" else {g: d for g, d in model_dirs().items() if g not in ("ensembles", "released")}
    return {group: {name: evaluation_file(d, "metrics.json", weights) for name, d in dirs.items()} for group, dirs in groups.items()}


def ranks_of(group):
    """Per-query tables of a group's best weights: name -> path."""
    return {name: evaluation_file(d, "ranks.parquet") for name, d in model_dirs()[group].items()}


def evaluation_outputs():
    return [path for weights in ("best", "last") for group in model_metrics(weights).values() for path in group.values()]


def example_ensemble():
    """The ensemble whose estimates the report shows: the first stage-2 run's, else the first one."""
    estimated = [run["ensemble"] for run in config["stage2"]["runs"] if run["ensemble"] != ORACLE]
    return estimated[0] if estimated else next(iter(config["correspondences"]["ensembles"]))


def training_logs():
    """log.csv of every training run, by the name the report gives it."""
    logs = {f"stage 1 {run}": f"{stage1_dir(run)}/log.csv" for run in stage1_runs()}
    logs.update({f"stage 2 {job['name']}": f"{stage2_dir(job['name'])}/log.csv" for job in STAGE2_JOBS})
    return logs


FIGURES = ("training_curves", "metrics", "correspondence_examples", "comparisons")


def report_file(name):
    return f"{OUT}/report/{name}"


def report_outputs():
    figures = [report_file(f"{figure}.{ext}") for figure in FIGURES for ext in ("png", "svg")]
    tables = [report_file(f"{table}.{ext}") for table in ("summary", "comparisons") for ext in ("csv", "md", "html")]
    return tables + figures


def comparison_groups():
    """What the comparisons table averages and pairs: groups of models (the seeds of each stage-2 run,
    the stage-1 runs), (what, group, baseline) pairs, and (estimated, control, oracle) triples whose
    share of the possible gain it states."""
    groups = {"stage 1 mean": stage1_runs()}
    for job in STAGE2_JOBS:
        groups.setdefault(job["family"], []).append(job["name"])
        groups.setdefault(f"stage 1 seed{job['init']}", [f"seed{job['init']}"])
    first = {}
    for job in STAGE2_JOBS:
        first.setdefault(job["family"], job)
    pairs, shares = [], []
    for family, job in first.items():
        if job["control_of"]:
            continue
        control = control_family(job["init"]) if control_family(job["init"]) in groups else None
        if control:
            pairs.append(("stage 2 - control", family, control))
        pairs.append(("stage 2 - its initial stage-1 model", family, f"stage 1 seed{job['init']}"))
        pairs.append(("stage 2 - mean of stage 1", family, "stage 1 mean"))
        oracles = [f for f, j in first.items() if j["ensemble"] == ORACLE and j["dist_weight"] and j["init"] == job["init"]]
        if control and oracles and job["ensemble"] != ORACLE:
            shares.append((family, control, oracles[0]))
    return groups, pairs, shares


def target_mass_rows():
    """The targets whose mass the demo's anatomy table breaks down: every ensemble at the model's
    temperature, each (ensemble, target_tau) a stage-2 run uses, and the oracle if one uses it."""
    tau = config["model"]["tau"]
    rows = {(name, tau) for name in config["correspondences"]["ensembles"]}
    rows |= {(job["ensemble"], job["target_tau"] or tau) for job in STAGE2_JOBS if job["dist_weight"]}
    return [{"ensemble": name, "tau": t} for name, t in sorted(rows)]
