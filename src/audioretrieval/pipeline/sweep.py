"""The map a configuration's `map` section describes, expanded once into plain values: its points
(one value of every axis) and the worlds that train them.

Axes come in two kinds. A world axis changes what stage 2 starts from (the data, stage 1): each of
its values is an overlay of the configuration, and every distinct combination of world-axis values
is a world, one full configuration trained by its own copy of the pipeline (rules/map.smk). A run
axis changes only the stage-2 run (its `ensemble`, `target_tau`, `target_rule`, loss weights): its values are
overlays of `map.run`, and all the run variants of one world share that world's stage-1 runs and
controls. Every point trains its variant from each of `map.starts` (stage-1 seeds) with each of
`map.seeds`, so that its intervals can include the randomness of training.

The design is the centre (every axis at its `centre` value), each other value of each axis with the
rest at the centre (one factor at a time), the full cross of the values each `interactions` entry
lists (the rest at the centre), and in every world the run settings `every_world` lists (e.g. the
oracle's targets, the ceiling). An `ensemble` of `own` means each start's own estimates (the paper's
self-distillation): the ensemble `seed{N}` of the start alone; `others` means each start's ensemble
of the map's other starts, `without{N}` (targets from runs that do not contain the start, so that the
points' intervals speak of the method rather than of one ensemble).
"""

from __future__ import annotations

import copy
import itertools

from audioretrieval.correspondences import target_rules
from audioretrieval.pipeline import study
from audioretrieval.pipeline.config import overlaid

OWN = "own"  # map.run ensemble: each start's own estimates
# the settings that change a world's release files (the demo generator's, or where ClothoV2 comes from)
RAW_SETTINGS = {"demo": None, "download": None, "data": {"source", "raw_dir", "md5"}}
# rules whose outputs lie outside out_dir (release files, downloads): one world runs them for all
# worlds that share the files
SHARED_FILE_RULES = (
    "generate_demo_dataset",
    "download_clotho",
    "download_relevance",
    "generate_demo_audiocaps",
    "generate_demo_audiocaps_test",
    "download_audiocaps_train_captions",
    "download_audiocaps_test_captions",
)


def _axes(design: dict) -> dict[str, dict]:
    return {**design["world_axes"], **design["run_axes"]}


def _combinations(design: dict) -> list[dict]:
    """The design's points as axis -> value label, in order, without repeats."""
    axes = _axes(design)
    centre = {axis: spec["centre"] for axis, spec in axes.items()}
    points = [centre]
    points += [{**centre, axis: value} for axis, spec in axes.items() for value in spec["values"]]
    for crossed in design["interactions"]:
        points += [{**centre, **dict(zip(crossed, values))} for values in itertools.product(*crossed.values())]
    worlds = {tuple(point[axis] for axis in design["world_axes"]) for point in points}
    for world, extra in itertools.product(sorted(worlds), design["every_world"]):
        points.append({**centre, **dict(zip(design["world_axes"], world)), **extra})
    unique = {tuple(point.items()): point for point in points}
    return list(unique.values())


def world_name(design: dict, point: dict) -> str:
    labels = [point[axis] for axis in design["world_axes"]]
    return "_".join(labels) if labels else "centre"


def variant_name(design: dict, point: dict) -> str:
    return "_".join(point[axis] for axis in design["run_axes"]) or "run"


def _raw_key(design: dict, point: dict) -> str | None:
    """What names a world's release files: the values of the world axes that change them (None: the
    configuration's own raw_dir serves every world)."""
    axes = [
        axis
        for axis, spec in design["world_axes"].items()
        if any(_changes_release(overlay) for overlay in spec["values"].values())
    ]
    return "_".join(point[axis] for axis in axes) if axes else None


def _changes_release(overlay: dict) -> bool:
    return any(
        section in overlay and (keys is None or set(overlay[section]) & keys) for section, keys in RAW_SETTINGS.items()
    )


def _run_of(design: dict, point: dict) -> dict:
    run = dict(design["run"])
    for axis, spec in design["run_axes"].items():
        run.update(spec["values"][point[axis]])
    return run


def _ensemble_of(run: dict, start: int) -> str:
    if run["ensemble"] == OWN:
        return study.stage1_run(start)
    return f"without{start}" if run["ensemble"] == study.OTHERS else run["ensemble"]


def _members_of(run: dict, start: int, starts: list[int], defined: dict) -> list:
    """The members of the ensemble a run distils from when it starts from `start`."""
    if run["ensemble"] == OWN:
        return [start]
    if run["ensemble"] == study.OTHERS:
        return [s for s in starts if s != start]
    return defined[run["ensemble"]]


def expand(config: dict) -> dict:
    """The map of `config`: {"worlds": name -> {config, excluded_rules}, "points": [...]}. A point:
    labels (axis -> value), world, variant, ensembles (one per start), targets (oracle or estimated),
    quality_rows, target_tau (resolved), rule (target_rules.label), weights, select_by (stage 2's epoch
    selection), runs (per start, per seed: the stage-2 job), controls (the same shape), starts
    (stage-1 runs)."""
    design = config["map"]
    base = {key: value for key, value in config.items() if key not in ("map", "released", "dcase2025_baseline")}
    by_world: dict[str, list[dict]] = {}
    for point in _combinations(design):
        by_world.setdefault(world_name(design, point), []).append(point)
    worlds, points, raw_owners = {}, [], {}
    for world, members in by_world.items():
        world_config = _world_config(config["out_dir"], design, base, world, members[0])
        runs, ensembles = [], {}
        for labels in members:
            run, variant = _run_of(design, labels), variant_name(design, labels)
            runs += _runs_of(design, variant, run, base["correspondences"]["ensembles"], ensembles)
            points.append(_point(design, labels, world, variant, run, world_config, ensembles))
        needed = {seed for members_ in ensembles.values() for seed in study.member_seeds(members_)}
        world_config["stage1"]["seeds"] = sorted(set(design["starts"]) | needed)
        _keep_encoder_runs(world_config["stage1"], ensembles)
        world_config["correspondences"]["ensembles"] = ensembles or {
            study.stage1_run(design["starts"][0]): [design["starts"][0]]
        }
        world_config["stage2"]["runs"] = runs
        owner = raw_owners.setdefault(world_config["data"]["raw_dir"], world)
        worlds[world] = {
            "config": world_config,
            "excluded_rules": ["all"] + ([] if owner == world else list(SHARED_FILE_RULES)),
        }
    return {"worlds": worlds, "points": points}


def _keep_encoder_runs(stage1: dict, ensembles: dict) -> None:
    """Only the runs of other encoders (stage1.encoders) that a world's ensembles name."""
    named = {run for members in ensembles.values() for run in study.member_encoder_runs(members)}
    kept = {}
    for name, spec in stage1.pop("encoders", {}).items():
        seeds = [seed for seed in spec["seeds"] if study.encoder_run(name, seed) in named]
        if seeds:
            kept[name] = {**spec, "seeds": seeds}
    if kept:
        stage1["encoders"] = kept


def _world_config(out_dir: str, design: dict, base: dict, world: str, labels: dict) -> dict:
    """The configuration of a world: the base with its world-axis values' overlays, writing below
    out_dir/world, its release files shared by the worlds with the same data."""
    world_config = base
    for axis, spec in design["world_axes"].items():
        world_config = overlaid(world_config, spec["values"][labels[axis]])
    world_config = copy.deepcopy(world_config)
    world_config["out_dir"] = f"{out_dir}/{world}"
    raw_key = _raw_key(design, labels)
    if raw_key is not None:
        world_config["data"]["raw_dir"] = f"{out_dir}/raw/{raw_key}"
        if world_config["data"]["source"] == "demo" and "audiocaps" in world_config:  # its stand-in, likewise
            world_config["audiocaps"].update(
                {
                    key: f"{out_dir}/raw/{raw_key}/audiocaps/{name}"
                    for key, name in (
                        ("captions_csv", "train.csv"),
                        ("test_captions_csv", "test.csv"),
                        ("audio_dir", "audio"),
                    )
                }
            )
    return world_config


def _runs_of(design: dict, variant: str, run: dict, defined: dict, ensembles: dict) -> list[dict]:
    """A variant's stage-2 runs, one per start (each with every seed and the shared control); adds
    the ensembles they distil from to `ensembles`."""
    runs = []
    for ensemble in study.rule_ensembles(run.get("target_rule")).values():
        ensembles[ensemble] = defined[ensemble]
    for start in design["starts"]:
        ensemble = _ensemble_of(run, start)
        if ensemble != study.ORACLE:
            ensembles[ensemble] = _members_of(run, start, design["starts"], defined)
        runs.append(
            {
                **run,
                "name": _run_name(variant, start),
                "init": start,
                "ensemble": ensemble,
                "seeds": list(design["seeds"]),
                "control": True,
            }
        )
    return runs


def _run_name(variant: str, start: int) -> str:
    return f"{variant}_from{start}"


def _point(design: dict, labels: dict, world: str, variant: str, run: dict, config: dict, ensembles: dict) -> dict:
    starts, seeds = design["starts"], design["seeds"]
    names = [_ensemble_of(run, start) for start in starts]
    rule = run.get("target_rule") or target_rules.DEFAULT
    return {
        "labels": dict(labels),
        "world": world,
        "variant": variant,
        "ensembles": names,
        "targets": "oracle" if run["ensemble"] == study.ORACLE else "estimated",
        "quality_rows": [None if name == study.ORACLE else study.quality_row(name, ensembles[name]) for name in names],
        "target_tau": study.target_tau(run, config["model"]["tau"]),
        "rule": target_rules.label(rule),
        "weights": {"dist": run["dist_weight"], "sup": run["sup_weight"]},
        "select_by": study.stage2_train(config)["select_by"],
        "starts": [study.stage1_run(start) for start in starts],
        "runs": [[study.job_name(_run_name(variant, start), seed) for seed in seeds] for start in starts],
        "controls": [[study.job_name(study.control_family(start), seed) for seed in seeds] for start in starts],
    }
