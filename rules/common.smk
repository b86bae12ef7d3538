# Start-up, paths (each written once), input functions, targets; the study itself: pipeline.study.
import os
import re
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
# The rules' scripts import the library of this checkout (also inside a conda environment, which
# then needs only the dependencies): src/ goes first on the path of this process and of every job.
sys.path.insert(0, SRC)

from audioretrieval.correspondences import is_caption_member
from audioretrieval.data import clotho, wavcaps
from audioretrieval.data.source import source_of
from audioretrieval.evaluation import sets
from audioretrieval.pipeline import lock, study, sweep
from audioretrieval.pipeline.config import check_config, check_config_files, check_out_dir
from audioretrieval.pipeline.provenance import code_digest
from audioretrieval.pipeline.workflow import prepend_to_pythonpath

prepend_to_pythonpath(SRC)
check_config_files(workflow.overwrite_configfiles or [Path(workflow.basedir) / "config" / "demo.yaml"])
check_config(config)
check_out_dir(config["out_dir"], workflow.basedir)

OUT = config["out_dir"]
DEMO = config["data"]["source"] == "demo"
# a dataset source of audioretrieval.data.sources (data.source beyond demo and clotho), or None
SOURCE = (
    None
    if config["data"]["source"] in ("demo", "clotho")
    else source_of(config["data"]["source"], config[config["data"]["source"]])
)
DATASET = sets.main_set(config)  # the folder of the decoded splits, and the name of its evaluation split as a test set
FURTHER_SETS = sets.further_sets(config)  # further test sets (evaluation.sets), e.g. audiocaps: AudioCaps test
# the caption files of the further test sets, whose clips no training set may hold (AudioCaps test's)
HELD_OUT_CAPTIONS = [config["audiocaps"]["test_captions_csv"]] if "audiocaps" in FURTHER_SETS else []
SPLITS = list(clotho.SPLITS)
ENSEMBLES = config["correspondences"]["ensembles"]
STAGE1_RUNS = study.stage1_runs(config) + study.encoder_runs(config)  # trained, evaluated, in the quality table
STAGE1_RUN_NAME = r"([a-z][a-z0-9]*-)?seed\d+"  # seed{N}, {encoder}-seed{N}
STAGE2_JOBS = {job.name: job for job in study.stage2_jobs(config)}
GPUS = config["stage1"]["gpus"]
TRAINING_THREADS = max(1, GPUS) * (config["train"]["num_workers"] + 1)  # per GPU: its process and DataLoader workers
CONDA_ENV = "../envs/pipeline.yaml"


wildcard_constraints:
    split="|".join(SPLITS),


# One run at a time writes out_dir (pipeline.lock): taken by the controlling Snakemake process only
# (Snakemake runs these handlers neither in dry runs nor in the jobs it submits, nor for a module);
# a refusal is one line, and leaves Snakemake's own lock released.
onstart:
    try:
        lock.acquire(OUT)
    except lock.OutDirInUse as exc:
        sys.exit(f"error: {exc}")


onsuccess:
    lock.release(OUT)


onerror:
    lock.release(OUT)


# ---- paths ----------------------------------------------------------------------------------------


def raw_file(name):
    """A file of the ClothoV2 release (downloaded, or generated for the demo)."""
    return f"{config['data']['raw_dir']}/{name}"


def truth_file(split):
    """The demo's ground truth: one row per (caption, clip it truly describes)."""
    return raw_file(f"demo_correspondences_{split}.parquet")


def verified_file(name):
    """The stamp that a release file was checked against its expected MD5."""
    return f"{OUT}/data/clothov2/verified/{name}.md5"


def data_file(split, name):
    """A decoded-data product of one split of the dataset (audio.h5, captions.parquet, skipped_clips.csv)."""
    return f"{OUT}/data/{DATASET}/{split}/{name}"


def wavcaps_file(name):
    """A file of the WavCaps release (downloaded, or generated for the demo)."""
    return f"{config['wavcaps']['raw_dir']}/{name}"


# files, not a directory: Snakemake compares checksums of files only, so touching leaves them current
TOKENIZER_FILES = [f"{OUT}/tokenizer/tokenizer.json", f"{OUT}/tokenizer/tokenizer_config.json"]


def text_states_file(split):
    """A frozen text encoder's pooled states of a split's captions (model.text_states)."""
    return f"{OUT}/text_states/{split}.h5"


def model_dir(stage, name):
    """The folder of a trained model (stage1/seed{N} or stage1/{encoder}-seed{N}, stage2/{job}, released/{name})."""
    return f"{OUT}/{stage}/{name}"


def checkpoint_file(folder, weights):
    """A model's checkpoint: the best or the last weights of a training run (a converted one: best)."""
    return f"{folder}/{weights}.pt"


TRAINED_WEIGHTS = ("best", "last")  # what a training run keeps; a converted checkpoint has only best


def trained_files(folder):
    """What a training run writes: best and last checkpoints and its log."""
    return {weights: checkpoint_file(folder, weights) for weights in TRAINED_WEIGHTS} | {
        "log_table": f"{folder}/log.csv"
    }


def embeddings_file(run):
    """A stage-1 run's embeddings of the training split, from its best checkpoint."""
    return f"{model_dir('stage1', run)}/embeddings/development.h5"


# the caption estimator's embeddings of the training captions (correspondences.captions)
CAPTION_FILE = f"{OUT}/caption_estimator/embeddings/development.h5"


def member_file(member):
    """What an ensemble member's estimates are read from: a stage-1 run's embeddings, or the captions'."""
    return CAPTION_FILE if is_caption_member(member) else embeddings_file(study.stage1_run(member))


def ensemble_dir(name):
    return f"{OUT}/correspondences/{name}"


def targets_file(ensemble):
    return f"{ensemble_dir(ensemble)}/targets.h5"


def test_set_files(test_set, files):
    """The decoded data of a further test set (key -> file name, e.g. EXTRA_SET_FILES): data/{set}/test/."""
    return {key: f"{OUT}/data/{test_set}/test/{name}" for key, name in files.items()}


EVALUATION_FILES = {"embeddings": "embeddings.h5", "metrics": "metrics.json", "ranks": "ranks.parquet"}


def evaluation_file(folder, name, weights="best", test_set=DATASET):
    """An evaluation product (EVALUATION_FILES) of a model's best or last weights, or of an ensemble,
    on a test set: the main dataset's evaluation split in evaluation/{weights}/, a further test set's
    in evaluation/{test_set}/{weights}/."""
    if test_set == DATASET:
        return f"{folder}/evaluation/{weights}/{name}"
    return f"{folder}/evaluation/{test_set}/{weights}/{name}"


def model_evaluation_files(folder, weights, test_set=DATASET):
    """The evaluation products of a model's checkpoints, keyed {weights}_{product}, e.g. best_metrics."""
    return {
        f"{w}_{key}": evaluation_file(folder, name, w, test_set)
        for w in weights
        for key, name in EVALUATION_FILES.items()
    }


def evaluation_inputs(checkpoints, text_states, test_set=DATASET):
    """What an evaluation job reads: checkpoints named {weights}.pt, the test set's audio and captions, the
    relevance table of the main evaluation split (a further test set: each caption's own clip)."""
    if test_set != DATASET:
        data = test_set_files(test_set, {"audio": "audio.h5", "captions": "captions.parquet"})
        return {"checkpoints": checkpoints, **data, "relevance": [], "text_states": []}
    return {
        "checkpoints": checkpoints,
        "audio": data_file("evaluation", "audio.h5"),
        "captions": data_file("evaluation", "captions.parquet"),
        "relevance": relevance_input(),
        "text_states": text_states,
    }


RELEVANCE_FILE = raw_file("dcase2025_task6_metadata_eval.csv")


def report_file(name):
    return f"{OUT}/report/{name}"


FIGURES = ("training_curves", "metrics", "correspondence_examples", "comparisons")


def log_file(rule_name, *parts):
    return os.path.join(OUT, "logs", rule_name, *parts) + ".log"


def benchmark_file(rule_name, *parts):
    return os.path.join(OUT, "benchmarks", rule_name, *parts) + ".tsv"


def code_of(script):
    """A digest of workflow_scripts/<script>.py and the library modules it imports, passed as a param:
    editing any of them reruns its rule; content decides, as the profile turns off the mtime trigger."""
    return code_digest(Path(workflow.basedir) / "workflow_scripts" / f"{script}.py", Path(SRC) / "audioretrieval")


# ---- input functions and settings -----------------------------------------------------------------


def verification_of(name):
    """The MD5 check of a ClothoV2 release file, which its readers wait for (none for the generated demo)."""
    return [] if DEMO or SOURCE else [verified_file(name)]


def decoding_settings(section):
    """How a set's audio is decoded: the data section's rate and bad-clip policy, the section's sample
    format (absent: the data section's) and missing-file tolerance."""
    return {
        "sample_rate": config["data"]["sample_rate"],
        "on_bad_clip": config["data"]["on_bad_clip"],
        "sample_format": section.get("sample_format", config["data"]["sample_format"]),
        "max_missing_fraction": section["max_missing_fraction"],
    }


def settings_without(section, key):
    """A configuration section without one key (so that editing that key reruns nothing here)."""
    return {k: v for k, v in config[section].items() if k != key}


# A frozen pretrained text encoder gives every job the same states of a caption: computed once per split
# (a random-init encoder differs between runs, a trained one after every step)
TEXT_STATES = bool(config["model"]["text"]["freeze"] and config["model"]["text"]["name"])


def text_states_input(*splits):
    return [text_states_file(split) for split in splits] if TEXT_STATES else []


def tokenizer_input():
    """The tokenizer a random-init text encoder needs from the pipeline (none for a hub model)."""
    text = config["model"]["text"]
    return [] if text["name"] or text["tokenizer"] else TOKENIZER_FILES


def gpu_resources(gpus):
    """A job's GPUs (none on a CPU-only configuration); SLURM: --gpus=<n> or --gpus=<gpu_model>:<n>."""
    model = config["stage1"]["gpu_model"]
    return {"gpu": gpus, **({"gpu_model": model} if model else {})} if gpus else {}


def ensemble_members(wildcards):
    return [member_file(member) for member in ENSEMBLES[wildcards.ensemble]]


def stage2_init(wildcards):
    return trained_files(model_dir("stage1", study.stage1_run(STAGE2_JOBS[wildcards.name].init)))["best"]


def stage2_targets(wildcards):
    """The targets a stage-2 job distils from (none for a control: it has no distillation term)."""
    job = STAGE2_JOBS[wildcards.name]
    return [targets_file(job.ensemble)] if job.ensemble else []


def rule_target_files(ensembles):
    """The inputs rule_<setting> of the ensembles a target rule's settings name (launch.RULE_INPUT)."""
    return {f"rule_{setting}": targets_file(ensemble) for setting, ensemble in ensembles.items()}


def stage2_rule_targets(wildcards):
    return rule_target_files(STAGE2_JOBS[wildcards.name].rule_ensembles)


def validation_relevance_input(settings):
    """The validation split's relevance table where a run selects its epoch by the multi-positive
    metric (train.select_by; the demo's truth, the only validation split with one)."""
    return [truth_file("validation")] if settings["select_by"] != "map@10" else []


def relevance_input():
    """The relevance table of the evaluation captions: the demo's truth, the dataset's, the configured
    download, or none."""
    if DEMO:
        return [truth_file("evaluation")]
    if SOURCE is not None:
        return [SOURCE.settings["relevance"]] if SOURCE.settings.get("relevance") else []
    return [RELEVANCE_FILE] if config["evaluation"]["relevance_url"] else []


def ensemble_evaluation_members(wildcards):
    test_set = wildcards.get("test_set", DATASET)
    return [
        evaluation_file(model_dir("stage1", study.stage1_run(member)), "embeddings.h5", test_set=test_set)
        for member in ENSEMBLES[wildcards.ensemble]
    ]


# ---- the map (rules/map.smk: MAP, its worlds loaded as modules) ---------------------------------------


def world_output(world, rule_name):
    """The declared outputs of a world's rule."""
    return getattr(rules, f"{world}_{rule_name}").output


def map_ranks(test_set=DATASET):
    """world -> run name -> the per-query table of its best weights on a test set, for every run the
    points pair."""
    rule_name = "evaluate_model" if test_set == DATASET else "evaluate_model_on_set"
    ranks = {}
    for point in MAP["points"]:
        pattern = str(world_output(point["world"], rule_name).best_ranks)
        stages = {name: "stage2" for row in point["runs"] + point["controls"] for name in row}
        stages |= {start: "stage1" for start in point["starts"]}
        ranks.setdefault(point["world"], {}).update(
            {name: pattern.format(stage=stage, model=name, test_set=test_set) for name, stage in stages.items()}
        )
    return ranks


def map_world_tables(rule_name):
    """world -> a demo world's table (correspondence quality or target mass); none beyond the demo."""
    return {world: str(world_output(world, rule_name).table) for world in MAP["worlds"]} if DEMO else {}


# ---- targets ---------------------------------------------------------------------------------------


def model_dirs():
    """Directories of every evaluated model by group: name -> folder."""
    return {
        "stage1": {run: model_dir("stage1", run) for run in STAGE1_RUNS},
        "ensembles": {name: ensemble_dir(name) for name in study.retrieval_ensembles(config)},
        "stage2": {name: model_dir("stage2", name) for name in STAGE2_JOBS},
        "released": {
            name: model_dir("released", name)
            for name, section in (("passt_roberta", "released"), ("dcase2025_baseline", "dcase2025_baseline"))
            if section in config
        },
    }


def model_metrics(weights="best", test_set=DATASET):
    """Metrics files by group: name -> path (weights "last": the training runs' last weights)."""
    trained = ("stage1", "stage2")
    return {
        group: {name: evaluation_file(folder, "metrics.json", weights, test_set) for name, folder in dirs.items()}
        for group, dirs in model_dirs().items()
        if weights == "best" or group in trained
    }


def all_outputs():
    """Everything `snakemake` builds by default (what these need, such as the decoded data, comes along)."""
    metadata = [clotho.metadata_csv(split) for split in SPLITS] if SOURCE is None else []
    outputs = [raw_file(name) for name in metadata] + [v for name in metadata for v in verification_of(name)]
    outputs += expand(rules.train_stage1.output, run=STAGE1_RUNS) + expand(rules.train_stage2.output, name=STAGE2_JOBS)
    outputs += expand(rules.ensemble_targets.output, ensemble=ENSEMBLES)
    outputs += [*rules.correspondence_quality.output, *rules.target_mass.output] if DEMO else []
    outputs += [
        path
        for test_set in config["evaluation"]["sets"]
        for weights in ("best", "last")
        for group in model_metrics(weights, test_set).values()
        for path in group.values()
    ]
    return outputs + [
        *rules.summary.output,
        *rules.comparisons.output,
        *rules.plots.output,
        *rules.listening_page.output,
    ]
