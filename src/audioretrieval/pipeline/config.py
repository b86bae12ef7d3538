"""Checks of the configuration that its JSON schema (config/schema.yaml) cannot express."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from audioretrieval.data import audiocaps
from audioretrieval.evaluation.sets import check_sets
from audioretrieval.pipeline.study import (
    CAPTIONS,
    ORACLE,
    OTHERS,
    encoder_runs,
    member_encoder_runs,
    member_seeds,
    rule_ensembles,
    stage1_run,
    stage2_jobs,
    stage2_train,
    uses_captions,
)


class ConfigError(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (which plain YAML loaders
    resolve silently, the last one winning)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{key_node.start_mark.name}: key {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); give it once"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def check_config_files(paths: list[str | os.PathLike]) -> None:
    """Refuse a configuration file that gives a key twice, naming the file, key and lines."""
    for path in paths:
        with open(path, encoding="utf-8") as file:
            yaml.load(file, Loader=_UniqueKeyLoader)


def check_out_dir(out_dir: str, repository: str | os.PathLike) -> None:
    """Refuse an out_dir that would mix the pipeline's outputs with other files: the file system's
    root, the repository or a folder above it, or a folder of the repository holding tracked files
    (other than a .gitkeep placeholder)."""
    where, repository = Path(out_dir).resolve(), Path(repository).resolve()
    if where == repository or where in repository.parents:
        raise ConfigError(
            f"out_dir {out_dir!r} is {'the repository' if where == repository else 'a folder above the repository'} "
            f"({where}): every output would land among other files; give a folder of its own, e.g. results/NAME"
        )
    if repository not in where.parents:
        return
    try:
        listed = subprocess.run(
            ["git", "-C", str(repository), "ls-files", "-z", "--", str(where)], capture_output=True, text=True
        )
    except FileNotFoundError:  # no git: a copy of the workflow without its history
        return
    tracked = [name for name in listed.stdout.split("\0") if name and Path(name).name != ".gitkeep"]
    if listed.returncode == 0 and tracked:
        raise ConfigError(
            f"out_dir {out_dir!r} holds files of the repository ({tracked[0]}"
            + (f" and {len(tracked) - 1} more" if len(tracked) > 1 else "")
            + "): outputs would mix with them; give a folder of its own, e.g. results/NAME"
        )


def overlaid(base: dict, overlay: dict) -> dict:
    """`base` with `overlay` merged into it key by key, as Snakemake merges several --configfile."""
    merged = dict(base)
    for key, value in overlay.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = overlaid(base[key], value) if nested else value
    return merged


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_config(config: dict) -> None:
    """Raise ConfigError naming the keys and values of the first inconsistency."""
    _check_model_and_training(config)
    _check_dataset_source(config)
    problem = check_sets(config)
    _require(problem is None, problem)
    _check_extra_sets(config)
    if "map" in config:
        _check_map(config)
    _check_ensembles_and_runs(config)


def _check_model_and_training(config: dict) -> None:
    demo = config.get("demo")
    if demo is not None:
        _require(
            demo["min_duration_s"] <= demo["max_duration_s"],
            f"demo.min_duration_s ({demo['min_duration_s']}) must not exceed "
            f"demo.max_duration_s ({demo['max_duration_s']})",
        )
    train, text = config["train"], config["model"]["text"]
    _check_audio_encoder(
        "model.audio", config["model"]["audio"], {"train": train, "stage2.train over train": stage2_train(config)}
    )
    for name, spec in config["stage1"].get("encoders", {}).items():  # stage 1 only
        _check_audio_encoder(f"stage1.encoders.{name}.audio", spec["audio"], {"train": train})
    small = text["random_init"]
    _require(
        small["hidden_size"] % small["heads"] == 0,
        f"model.text.random_init.hidden_size ({small['hidden_size']}) must be divisible by "
        f"its heads ({small['heads']})",
    )
    for where, settings in (("train", train), ("stage2.train over train", stage2_train(config))):
        _require(
            settings["warmup_epochs"] <= settings["rampdown_start"] <= settings["rampdown_stop"],
            f"{where}: expected warmup_epochs ({settings['warmup_epochs']}) <= rampdown_start "
            f"({settings['rampdown_start']}) <= rampdown_stop ({settings['rampdown_stop']})",
        )
    gpus = config["stage1"]["gpus"]
    _require(
        gpus <= 1 or train["batch_size"] % gpus == 0,
        f"train.batch_size ({train['batch_size']}) must be divisible by stage1.gpus ({gpus})",
    )

    for where, settings in (("train", train), ("stage2.train", stage2_train(config))):
        _require(
            settings["select_by"] == "map@10" or config["data"]["source"] == "demo",
            f"{where}.select_by {settings['select_by']!r} needs relevance annotations of the validation split, "
            "which only the demo has (ClothoV2's DCASE 2025 file and table.relevance annotate the evaluation split): "
            "use map@10",
        )
    _require(
        not (config["data"]["source"] == "demo" and config["evaluation"]["relevance_url"]),
        "evaluation.relevance_url is set, but the demo scores multi-positive mAP against its own ground truth: "
        "set it to null",
    )


def _check_dataset_source(config: dict) -> None:
    """A dataset source's section against data.source (data.source: table)."""
    _require(
        "table" not in config or config["data"]["source"] == "table",
        f"a table section is set, but data.source is {config['data']['source']}: set data.source: table to use it, "
        "or remove the section (an extra set is extra_tables.<name>)",
    )
    split = config.get("table", {}).get("split")
    if isinstance(split, dict) and config["data"]["source"] == "table":
        _require(
            split["validation"] > 0 and split["evaluation"] > 0 and split["validation"] + split["evaluation"] < 1,
            f"table.split: validation ({split['validation']}) and evaluation ({split['evaluation']}) must each be "
            "above 0 and leave some files to development (their sum below 1)",
        )
    _require(
        config["data"]["source"] in ("demo", "clotho") or not config["evaluation"]["relevance_url"],
        f"evaluation.relevance_url is set, but it annotates ClothoV2: the {config['data']['source']} dataset's "
        f"relevance table is {config['data']['source']}.relevance",
    )


def _check_audio_encoder(where: str, audio: dict, trainings: dict) -> None:
    """An audio encoder's settings (model.audio, or one of stage1.encoders) against its training's."""
    for training, settings in trainings.items():
        _require(
            settings["segment_s"] >= audio["window_s"],
            f"{training}: segment_s ({settings['segment_s']}) must be at least {where}.window_s ({audio['window_s']})",
        )
    if "num_heads" in audio:  # the transformer families
        _require(
            audio["embed_dim"] % audio["num_heads"] == 0,
            f"{where}.embed_dim ({audio['embed_dim']}) must be divisible by {where}.num_heads ({audio['num_heads']})",
        )
    _require(
        not (audio["pretrained"] is False and audio["weights"]),
        f"{where}.weights is set but {where}.pretrained is false: set pretrained: true to load them",
    )


def _check_ensembles_and_runs(config: dict) -> None:
    demo = config.get("demo")
    seeds, runs = set(config["stage1"]["seeds"]), encoder_runs(config)
    for name, members in config["correspondences"]["ensembles"].items():
        unknown = sorted(set(member_seeds(members)) - seeds)
        _require(not unknown, f"correspondences.ensembles.{name}: seeds {unknown} are not in stage1.seeds")
        unknown = [run for run in member_encoder_runs(members) if run not in runs]
        _require(
            not unknown,
            f"correspondences.ensembles.{name}: {unknown} are not runs of stage1.encoders "
            f"({', '.join(runs) or 'none configured'})",
        )
    _require(
        not uses_captions(config) or "captions" in config["correspondences"],
        f"correspondences.ensembles: a member {CAPTIONS!r} needs the correspondences.captions settings (its model)",
    )
    _require(
        ORACLE not in config["correspondences"]["ensembles"],
        f"correspondences.ensembles: {ORACLE!r} is reserved for the demo's ground-truth targets",
    )
    names = [job.name for job in stage2_jobs(config)]
    _require(len(set(names)) == len(names), f"stage2.runs: job names must be unique, got {names}")
    for run in config["stage2"]["runs"]:
        where = f"stage2.runs[{run['name']}]"
        _require(run["init"] in seeds, f"{where}.init: seed {run['init']} is not in stage1.seeds")
        if run["ensemble"] == ORACLE:
            _require(
                demo is not None and config["data"]["source"] == "demo",
                f"{where}.ensemble: {ORACLE!r} targets come from the demo's ground truth; use them on the demo only",
            )
        else:
            _require(
                run["ensemble"] in config["correspondences"]["ensembles"],
                f"{where}.ensemble: {run['ensemble']!r} is not in correspondences.ensembles "
                f"(or {ORACLE!r} on the demo)",
            )
        _require(run["dist_weight"] + run["sup_weight"] > 0, f"{where}: dist_weight and sup_weight are both 0")
        _check_rule_ensembles(f"{where}.target_rule", run.get("target_rule"), config["correspondences"]["ensembles"])


def _check_rule_ensembles(where: str, rule: dict | None, ensembles: dict) -> None:
    for setting, ensemble in rule_ensembles(rule).items():
        _require(
            ensemble in ensembles,
            f"{where}.{setting}: {ensemble!r} is not in correspondences.ensembles",
        )


def _check_extra_sets(config: dict) -> None:
    extra = [name for name in ("audiocaps", "wavcaps") if name in config]
    tables = {f"extra_tables.{name}": table for name, table in config.get("extra_tables", {}).items()}
    _require(
        config["stage1"]["train_on"] != "all" or extra or tables,
        "stage1.train_on is all, but none of audiocaps, wavcaps or extra_tables is configured: "
        "add one or set train_on: clothov2",
    )
    if config["stage1"]["train_on"] == "all":
        formats = {"data": config["data"]["sample_format"], **{name: config[name]["sample_format"] for name in extra}}
        formats |= {name: table.get("sample_format", config["data"]["sample_format"]) for name, table in tables.items()}
        floats = {name for name, fmt in formats.items() if fmt == "float32"}
        _require(
            not floats or floats == set(formats),
            f"sample_format: the sets stage 1 trains on together must all be float32 or none: {formats}",
        )
    demo = config["data"]["source"] == "demo"
    if "audiocaps" in config:
        _check_audiocaps(config, demo)
    if demo and extra:
        _require(
            "extra" in config["demo"], f"{' and '.join(extra)} on the demo: demo.extra must give the stand-ins' sizes"
        )
    if demo and "wavcaps" in config:
        generated = sorted(config["demo"]["extra"]["wavcaps_clips"])
        _require(
            generated == sorted(config["wavcaps"]["sources"]),
            f"wavcaps.sources {config['wavcaps']['sources']} must be the sources "
            f"demo.extra.wavcaps_clips generates {generated}",
        )


def _check_audiocaps(config: dict, demo: bool) -> None:
    """AudioCaps' settings, and its files where a configuration uses them (train: stage1.train_on all;
    test: evaluation.sets): downloaded or given, or on the demo its stand-in's, beside the demo's ClothoV2."""
    section = config["audiocaps"]
    try:
        audiocaps.check_template(section["file_name"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    used = {
        "captions": config["stage1"]["train_on"] == "all",
        "test_captions": "audiocaps" in config["evaluation"]["sets"],
    }
    _require(
        not (used["test_captions"] and "{audiocap_id}" in section["file_name"]),
        f"audiocaps.file_name {section['file_name']!r}: {{audiocap_id}} names a caption, and a test clip has five: "
        "name the files by {youtube_id} (and {start_time})",
    )
    for prefix in ("captions", "test_captions"):
        url, path = section[f"{prefix}_url"], section[f"{prefix}_csv"]
        if demo:
            _require(
                not url, f"audiocaps.{prefix}_url is set, but the demo generates its AudioCaps stand-in: set it to null"
            )
        elif used[prefix]:
            _require(
                bool(url) or Path(path).exists(),
                f"audiocaps.{prefix}_csv {path!r}: no such file, and no audiocaps.{prefix}_url to download it from "
                "(the demo's AudioCaps stand-in is generated only with data.source demo)",
            )
    if demo and any(used.values()):  # the stand-in follows the demo's settings: it lives beside its ClothoV2
        folder = Path(config["data"]["raw_dir"]).absolute().parent
        for key in ("captions_csv", "test_captions_csv", "audio_dir"):
            _require(
                folder in Path(section[key]).absolute().parents,
                f"audiocaps.{key} {section[key]!r} is outside {str(folder)!r}, the folder of data.raw_dir: on the demo "
                "the AudioCaps stand-in is generated from the demo settings, so it belongs beside the ClothoV2 one",
            )
        extra = config["demo"].get("extra", {})
        _require(
            extra.get("audiocaps_leaked", 0) <= extra.get("audiocaps_test_clips", 0),
            f"demo.extra: audiocaps_leaked ({extra.get('audiocaps_leaked')}) exceeds audiocaps_test_clips "
            f"({extra.get('audiocaps_test_clips')})",
        )


# the columns map.csv gives every point besides its axes' values (report.sweep): no axis may take their names
MAP_POINT_COLUMNS = frozenset(
    {"world", "variant", "rule", "target_tau", "dist_weight", "sup_weight", "select_by", "starts", "seeds", "runs"}
    | {"target_source", "set"}
)


def _check_map(config: dict) -> None:
    design = config["map"]
    world_axes, run_axes = design["world_axes"], design["run_axes"]
    shared = sorted(set(world_axes) & set(run_axes))
    _require(not shared, f"map: {shared} are both world and run axes")
    axes = {**world_axes, **run_axes}
    taken = sorted(set(axes) & MAP_POINT_COLUMNS)
    _require(not taken, f"map: axes {taken} have names of the map's own columns; name them otherwise")
    for axis, spec in axes.items():
        _require(
            spec["centre"] in spec["values"], f"map axis {axis}: centre {spec['centre']!r} is not one of its values"
        )
    for crossed in design["interactions"]:
        _check_axis_values("map.interactions", crossed, axes)
    for extra in design["every_world"]:
        _check_axis_values("map.every_world", extra, run_axes)
    _check_map_worlds(config)
    _check_map_runs(config)


def _check_axis_values(where: str, settings: dict, axes: dict) -> None:
    for axis, values in settings.items():
        _require(
            axis in axes,
            f"{where}: {axis!r} is not {'a run axis' if where.endswith('world') else 'an axis'} of the map",
        )
        unknown = sorted(set([values] if isinstance(values, str) else values) - set(axes[axis]["values"]))
        _require(not unknown, f"{where}: {unknown} are not values of axis {axis!r}")


def _check_map_worlds(config: dict) -> None:
    """What a world may change: not where the map writes, and not the extra sets (whose files every
    world would share and write)."""
    _require(
        config["stage1"]["train_on"] != "all",
        "map: stage1.train_on all is not mapped (the extra sets' files would be shared by every world): "
        "map stage 2 over stage 1 on clothov2",
    )
    for axis, spec in config["map"]["world_axes"].items():
        for value, overlay in spec["values"].items():
            fixed = sorted(set(overlay) & {"out_dir", "map", "audiocaps", "wavcaps"})
            _require(not fixed, f"map axis {axis}, value {value}: a world cannot set {fixed}")
            _require(
                "sets" not in overlay.get("evaluation", {}) and "source" not in overlay.get("data", {}),
                f"map axis {axis}, value {value}: a world cannot set evaluation.sets or data.source "
                "(every world is scored on the map's test sets)",
            )
            _require(
                overlay.get("stage1", {}).get("train_on", "clothov2") != "all",
                f"map axis {axis}, value {value}: stage1.train_on all is not mapped",
            )


def _check_map_runs(config: dict) -> None:
    """Every run variant names an estimator there is, and is not the control itself."""
    design = config["map"]
    defined = config["correspondences"]["ensembles"]
    _require(
        "own" not in defined, "correspondences.ensembles: 'own' is reserved for the map (each start's own estimates)"
    )
    _require(
        OTHERS not in defined,
        f"correspondences.ensembles: {OTHERS!r} is reserved for the map (each start's ensemble of the other starts)",
    )
    ensembles = set(defined) | {"own", OTHERS} | ({ORACLE} if config.get("demo") else set())
    overlays = [
        (f"map axis {axis}, value {value}", overlay)
        for axis, spec in design["run_axes"].items()
        for value, overlay in spec["values"].items()
    ]
    for where, overlay in [("map.run", design["run"])] + overlays:
        run = {**design["run"], **overlay}
        _require(
            run["ensemble"] in ensembles,
            f"{where}: ensemble {run['ensemble']!r} is not in correspondences.ensembles "
            "(or own, or oracle on the demo)",
        )
        _require(run["dist_weight"] > 0, f"{where}: dist_weight is 0: that run would be the control itself")
        _check_rule_ensembles(f"{where}: target_rule", run.get("target_rule"), defined)
    _require(
        len(design["starts"]) > 1 or not any(o.get("ensemble") == OTHERS for _, o in overlays),
        f"map: ensemble {OTHERS!r} needs at least two starts",
    )
    for start in design["starts"]:
        own = defined.get(stage1_run(start), [start])
        _require(
            own == [start],
            f"correspondences.ensembles.{stage1_run(start)} is {own}: the map names each start's own estimates so",
        )
