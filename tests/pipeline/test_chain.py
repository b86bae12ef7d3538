"""The tiny demo's whole chain in the full setting, built once through the real Snakemake CLI, and
what Snakemake reruns (or not) once it exists."""

import copy
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from browser import rendered_dom, screenshot
from conftest import REPO, planned_rules, rule_blocks, run_snakemake, tiny_config, write_config
from system_packages import Unavailable

from audioretrieval.data import clotho
from audioretrieval.data.h5audio import AudioH5

pytestmark = pytest.mark.snakemake


def with_extra_sets(config: dict) -> dict:
    """The tiny demo in the full setting: stage 1 also on AudioCaps and WavCaps stand-ins (some
    AudioCaps audio missing, some FreeSound clips carrying ClothoV2's Freesound ids, some AudioCaps
    train and AudioSet_SL clips AudioCaps test's), every model also scored on AudioCaps test."""
    full = yaml.safe_load((REPO / "config" / "demo_full.yaml").read_text())
    config = {**config, "audiocaps": {**config["audiocaps"], **full["audiocaps"]}, "wavcaps": full["wavcaps"]}
    raw = Path(config["out_dir"]) / "raw"
    config["audiocaps"].update(
        captions_csv=str(raw / "audiocaps" / "train.csv"),
        test_captions_csv=str(raw / "audiocaps" / "test.csv"),
        audio_dir=str(raw / "audiocaps" / "audio"),
    )
    config["wavcaps"].update(raw_dir=str(raw / "wavcaps"), sources=["FreeSound", "SoundBible", "AudioSet_SL"])
    config["demo"]["extra"] = {
        "audiocaps_clips": 12,
        "audiocaps_missing": 1,
        "audiocaps_test_clips": 4,
        "audiocaps_leaked": 2,
        "wavcaps_clips": {"FreeSound": 10, "SoundBible": 4, "AudioSet_SL": 4},
        "wavcaps_excluded": 3,
    }
    config["stage1"] = {**config["stage1"], "train_on": "all"}
    config["evaluation"] = {**config["evaluation"], "sets": ["clothov2", "audiocaps"]}
    return config


def with_other_encoders(config: dict) -> dict:
    """One stage-1 run of each other audio encoder family at a tiny size, in a mixed ensemble."""
    tiny = {"pretrained": False, "weights": None, "window_s": 1.0, "hop_s": 1.0}
    config["stage1"] = {
        **config["stage1"],
        "encoders": {
            "mn": {"seeds": [1], "audio": {"family": "mn", "width_mult": 0.1, **tiny}},
            "atst": {"seeds": [1], "audio": {"family": "atst", "embed_dim": 32, "depth": 1, "num_heads": 2, **tiny}},
        },
    }
    ensembles = config["correspondences"]["ensembles"]
    config["correspondences"] = {
        **config["correspondences"],
        "ensembles": {**ensembles, "mixed": [1, "mn-seed1", "atst-seed1"]},
    }
    return config


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The tiny demo's whole chain in the full setting, with runs of the other audio encoders, built
    once for the scenarios below (which only plan against it, or check that it stays up to date)."""
    root = tmp_path_factory.mktemp("chain")
    config = with_other_encoders(with_extra_sets(tiny_config(root / "results")))
    configfile = write_config(root, config)
    first = run_snakemake("--cores", 2, "--configfile", configfile, cwd=root)
    return root, config, configfile, first


def test_the_chain_trains_every_seed_and_builds_the_tokenizer_it_needs(chain):
    root, _, _, first = chain
    out = root / "results"
    assert (first.stdout + first.stderr).count("rule train_stage1:") == 4  # seeds 1, 2; mn-seed1, atst-seed1
    assert (out / "tokenizer" / "tokenizer.json").exists()  # built by its own rule from the training captions
    weights = []
    for seed in (1, 2):
        run = out / "stage1" / f"seed{seed}"
        assert pd.read_csv(run / "log.csv")["epoch"].tolist() == [1, 2]
        checkpoint = torch.load(run / "best.pt", weights_only=True)
        assert checkpoint["seed"] == seed and checkpoint["model_config"]["embed_dim"] == 16
        weights.append(checkpoint["state_dict"]["audio.projection.weight"])
        assert (run / "embeddings" / "development.h5").exists()
    assert not torch.equal(*weights)  # the seeds differ
    for job in ("distill-seed523528930", "control-from-seed1-seed523528930"):
        assert pd.read_csv(out / "stage2" / job / "log.csv")["epoch"].tolist() == [1]


def test_runs_of_other_audio_encoders_train_as_their_family_and_join_a_mixed_ensemble(chain):
    root, _, _, first = chain
    out = root / "results"
    for run, family in (("mn-seed1", "mn"), ("atst-seed1", "atst")):
        checkpoint = torch.load(out / "stage1" / run / "best.pt", weights_only=True)
        assert checkpoint["seed"] == 1 and checkpoint["model_config"]["audio"]["family"] == family
        assert checkpoint["model_config"]["embed_dim"] == 16  # the seeds' shared space
    ensemble = rule_blocks(first, "ensemble_targets")
    mixed = next(block for block in ensemble if "ensemble=mixed" in block)
    for run in ("seed1", "mn-seed1", "atst-seed1"):
        assert f"stage1/{run}/embeddings/development.h5" in mixed
    # stage 2 still starts from model.audio's seed: no other encoder's run is read
    for block in rule_blocks(first, "train_stage2"):
        assert "mn-seed1" not in block and "atst-seed1" not in block


def test_the_chain_evaluates_best_and_last_weights_and_reports_them(chain):
    root, _, _, _ = chain
    out = root / "results"
    quality = pd.read_csv(out / "correspondences" / "quality.csv")
    assert quality["model"].tolist() == [
        "seed1",
        "seed2",
        "atst-seed1",
        "mn-seed1",
        "captions",
        "ensemble all",
        "ensemble all_captions",
        "ensemble mixed",
    ]
    assert quality["roc_auc"].between(0, 1).all()
    texts = pd.read_parquet(out / "data" / "clothov2" / "evaluation" / "captions.parquet")["caption"].nunique()
    models = [
        (d, w)
        for d in (
            "stage1/seed1",
            "stage1/seed2",
            "stage1/mn-seed1",
            "stage1/atst-seed1",
            "stage2/distill-seed523528930",
            "stage2/control-from-seed1-seed523528930",
        )
        for w in ("best", "last")
    ]
    for model_dir, weights in models + [("correspondences/all", "best"), ("correspondences/mixed", "best")]:
        metrics = json.loads((out / model_dir / "evaluation" / weights / "metrics.json").read_text())
        assert metrics["captions"] == 5 * 4 and metrics["clips"] == 4  # the evaluation split
        assert metrics["dcase2025_queries"] == texts  # the demo's truth: every caption text is a query
        on_audiocaps = json.loads((out / model_dir / "evaluation" / "audiocaps" / weights / "metrics.json").read_text())
        assert on_audiocaps["captions"] == 5 * 4 and on_audiocaps["clips"] == 4  # AudioCaps test: its own clip only
        assert "dcase2025_queries" not in on_audiocaps
    both = pd.read_csv(out / "report" / "summary.csv", keep_default_na=False)
    assert both["set"].unique().tolist() == ["clothov2", "audiocaps"]
    on_audiocaps = both[both["set"] == "audiocaps"]
    assert on_audiocaps["DCASE25 mAP@16"].eq("").all() and on_audiocaps["mAP@10"].ne("").all()
    summary = both[both["set"] == "clothov2"]
    best = [
        "seed1",
        "seed2",
        "atst-seed1",
        "mn-seed1",
        "stage 1, mean of 2 seeds",  # model.audio's seeds only
        "ensemble all",
        "ensemble mixed",
        "distill-seed523528930",
        "control-from-seed1-seed523528930",
    ]
    assert summary["model"].tolist() == best + [m for m in best if not m.startswith("ensemble")]
    assert summary["weights"].tolist() == ["best"] * 9 + ["last"] * 7
    both = pd.read_csv(out / "report" / "comparisons.csv")
    assert both.groupby("set", sort=False)["metric"].unique().map(list).to_dict() == {
        "clothov2": ["ap@10", "dcase2025_ap@10"],
        "audiocaps": ["ap@10"],
    }
    assert (both.loc[both["set"] == "audiocaps", "queries"] == 20).all()
    comparisons = both[both["set"] == "clothov2"]
    text = (out / "report" / "summary.md").read_text()
    assert "on ClothoV2 evaluation (%)" in text and "on AudioCaps test (%)" in text
    assert set(comparisons["comparison"]) == {
        "stage 2 - control",
        "stage 2 - its initial stage-1 model",
        "stage 2 - mean of stage 1",
    }
    assert comparisons.set_index("metric")["queries"].to_dict() == {"ap@10": 20, "dcase2025_ap@10": texts}
    for figure in ("training_curves", "metrics", "correspondence_examples", "comparisons"):
        assert (out / "report" / f"{figure}.png").stat().st_size > 0 and (out / "report" / f"{figure}.svg").exists()


def test_the_report_is_one_html_page_with_the_tables_and_figures(chain):
    root, _, configfile, _ = chain
    run_snakemake("--configfile", configfile, "--report", root / "report.html", cwd=root)
    html = (root / "report.html").read_text()
    assert "correspondence_examples.png" in html and "summary.html" in html and "comparisons.html" in html
    assert "3. Listen" in html  # the listening page, with its clips


def test_the_listening_page_plays_every_clip_in_a_browser(chain, tmp_path):
    root, config, _, _ = chain
    page = root / "results" / "report" / "listen.html"
    try:
        dom = rendered_dom(page)
    except Unavailable as exc:
        pytest.skip(f"no headless browser here: {exc}")
    models = 4 + 2 + 2  # four stage-1 runs, two ensembles of several, stage 2 and its control
    players = config["report"]["listening_queries"] * models * config["demo"]["clips"]["evaluation"]  # top 5 of 4
    assert dom.count("<audio") == dom.count('data-state="loaded"') == players
    assert "✔" in dom and screenshot(page, tmp_path / "listen.png").stat().st_size > 0


def test_a_second_run_and_touched_files_rerun_nothing(chain):
    root, _, configfile, _ = chain
    again = run_snakemake("--cores", 2, "--configfile", configfile, cwd=root)
    assert "Nothing to be done" in again.stdout + again.stderr
    # touching every output (and the library) without changing content reruns nothing
    for path in [*(root / "results").rglob("*"), *(REPO / "src").rglob("*.py")]:
        if path.is_file():
            os.utime(path)
    touched = run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root)
    assert "Nothing to be done" in touched.stdout + touched.stderr, touched.stdout[-3000:]


def test_stage2_starts_from_and_distils_the_best_weights_of_stage1_not_the_last(chain):
    root, _, configfile, _ = chain
    run = root / "results" / "stage1" / "seed1"
    for weights, depends in (("last", set()), ("best", {"export_embeddings", "ensemble_targets", "train_stage2"})):
        kept = (run / f"{weights}.pt").read_bytes()
        shutil.copy(run.parent / "seed2" / f"{weights}.pt", run / f"{weights}.pt")  # other weights, same name
        try:
            planned = planned_rules(run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root))
        finally:
            (run / f"{weights}.pt").write_bytes(kept)
        assert "evaluate_model" in planned  # the changed weights are evaluated again
        assert planned & {"export_embeddings", "ensemble_targets", "train_stage2"} == depends, weights


def test_another_stage1_seed_reruns_what_depends_on_it_and_not_the_unchanged_seed(chain):
    root, config, _, _ = chain
    reseeded = {
        **config,
        "stage1": {**config["stage1"], "seeds": [1, 3]},
        "correspondences": {**config["correspondences"], "ensembles": {"all": [1, 3]}},
    }
    result = run_snakemake("-n", "--cores", 2, "--configfile", write_config(root / "reseeded", reseeded), cwd=root)
    assert "run=seed3" in result.stdout and "run=seed1" not in result.stdout
    assert result.stdout.count("rule train_stage1:") == 1 and result.stdout.count("rule train_stage2:") == 1
    assert "name=distill-seed523528930" in result.stdout  # new targets; its control reads none


def test_editing_library_code_reruns_the_rules_that_run_it(chain, tmp_path):
    root, _, configfile, _ = chain
    copy = tmp_path / "workflow"
    copy.mkdir()
    for name in ("Snakefile", "rules", "workflow_scripts", "src", "config", "report", "profiles"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, copy / name)
    moved = run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root, snakefile=copy / "Snakefile")
    assert "Nothing to be done" in moved.stdout + moved.stderr  # the same code elsewhere is the same code
    with open(copy / "src" / "audioretrieval" / "training" / "losses.py", "a") as f:
        f.write("\n# an edit\n")
    edited = run_snakemake("-n", "--cores", 2, "--configfile", configfile, cwd=root, snakefile=copy / "Snakefile")
    rerun = planned_rules(edited)
    assert {"train_stage1", "train_stage2", "export_embeddings", "evaluate_model", "summary"} <= rerun
    assert not rerun & {"generate_demo_dataset", "decode_audio", "caption_table", "build_tokenizer"}


def test_a_setting_only_the_distillation_uses_reruns_the_run_and_not_its_control(chain):
    root, config, _, _ = chain
    changed = copy.deepcopy(config)
    changed["stage2"]["runs"][0]["target_tau"] = 0.1
    result = run_snakemake("-n", "--cores", 2, "--configfile", write_config(root / "tau", changed), cwd=root)
    assert planned_rules(result) == {
        "train_stage2",
        "evaluate_model",
        "evaluate_model_on_set",
        "target_mass",
        "summary",
        "comparisons",
        "plots",
        "listening_page",
        "all",
    }
    assert "name=distill-seed523528930" in result.stdout and "name=control-from" not in result.stdout


def test_more_seeds_or_a_control_asked_for_later_train_only_the_new_jobs(chain):
    root, config, _, _ = chain
    more = copy.deepcopy(config)
    more["stage2"]["runs"][0]["seeds"] = [523528930, 11]
    result = run_snakemake("-n", "--cores", 2, "--configfile", write_config(root / "more", more), cwd=root)
    assert result.stdout.count("rule train_stage2:") == 2
    assert "name=distill-seed11" in result.stdout and "name=control-from-seed1-seed11" in result.stdout
    assert "name=distill-seed523528930" not in result.stdout


def test_stage1_trains_on_the_extra_sets_and_no_clotho_clip_leaks_in_through_wavcaps(chain):
    root, config, _, first = chain
    out, raw = root / "results", root / "results" / "raw"
    stage1 = rule_blocks(first, "train_stage1")[0]
    for data in ("clothov2/development", "audiocaps/train", "wavcaps/FreeSound", "wavcaps/SoundBible"):
        assert f"data/{data}/audio.h5" in stage1
    assert "audiocaps/test" not in stage1
    for block in rule_blocks(first, "train_stage2") + rule_blocks(first, "export_embeddings"):
        assert "audiocaps" not in block and "wavcaps" not in block  # targets only over ClothoV2 development
    log = (out / "logs" / "train_stage1" / "seed1.log").read_text()
    assert (
        "training on 64 captions of 32 clips from 5 set(s)" in log
    )  # 40 + 11 + 7 + 4 + 2 captions of 8 + 11 + 7 + 4 + 2 clips

    excluded_ids = set(
        pd.read_csv(raw / "wavcaps" / "dcase2024_task6_excluded_freesound_ids.csv", dtype=str).iloc[:, 0]
    )
    clotho_raw = Path(config["data"]["raw_dir"])
    clotho_ids = set(
        pd.concat(
            [pd.read_csv(clotho_raw / clotho.metadata_csv(s), encoding="ISO-8859-1", dtype=str) for s in clotho.SPLITS]
        )["sound_id"]
    )
    assert excluded_ids == clotho_ids
    excluded = pd.read_csv(out / "data" / "wavcaps" / "FreeSound" / "excluded_clips.csv", dtype=str)
    assert len(excluded) == 3 and set(excluded["id"]) <= excluded_ids
    kept = pd.read_parquet(out / "data" / "wavcaps" / "FreeSound" / "captions.parquet")
    assert len(kept) == 7 and not set(kept["file_name"]) & set(excluded["file_name"])
    assert len(pd.read_csv(out / "data" / "audiocaps" / "train" / "missing_clips.csv")) == 1
    assert AudioH5(out / "data" / "audiocaps" / "train" / "audio.h5").sample_format == "zstd"
    assert AudioH5(out / "data" / "wavcaps" / "SoundBible" / "audio.h5").sample_format == "flac"


def test_no_audiocaps_test_clip_reaches_training_through_audiocaps_train_or_audioset(chain):
    root, config, _, _ = chain
    out = root / "results"
    test = pd.read_csv(config["audiocaps"]["test_captions_csv"], dtype=str)
    test_files = set(pd.read_parquet(out / "data" / "audiocaps" / "test" / "captions.parquet")["file_name"])
    assert len(test_files) == 4
    excluded = pd.read_csv(out / "data" / "audiocaps" / "train" / "excluded_clips.csv", dtype=str)
    assert len(excluded) == 2 and set(excluded["youtube_id"]) <= set(test["youtube_id"])
    left_out = pd.read_csv(out / "data" / "wavcaps" / "AudioSet_SL" / "excluded_clips.csv", dtype=str)
    assert len(left_out) == 2 and {i[1:12] for i in left_out["id"]} <= set(test["youtube_id"])
    trained = set()
    for data in ("audiocaps/train", "wavcaps/AudioSet_SL"):
        trained |= set(pd.read_parquet(out / "data" / data / "captions.parquet")["file_name"])
    assert not test_files & trained
    test_ids = set(test["youtube_id"])
    assert not {name[1:12] for name in trained if name.endswith(".flac")} & test_ids  # AudioSet_SL: Y{id}.flac
    assert not {name[:11] for name in trained if name.endswith(".wav")} & test_ids  # AudioCaps: {id}_{start}.wav
