"""The workflow through the real Snakemake CLI."""

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from browser import rendered_dom, screenshot
from conftest import REPO, run_snakemake, tiny_config
from http_server import FileServer
from system_packages import Unavailable

from audioretrieval.data import clotho
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.pipeline.lock import LOCK_NAME

pytestmark = pytest.mark.snakemake


def write_config(folder, config) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return str(path)


def data_targets(config):
    out = config["out_dir"]
    return [f"{out}/data/clothov2/{s}/{name}" for s in clotho.SPLITS for name in ("audio.h5", "captions.parquet")]


def test_demo_data_targets_are_built_offline_and_then_up_to_date(tmp_path, tiny_demo_config):
    configfile = write_config(tmp_path, tiny_demo_config)
    run_snakemake(*data_targets(tiny_demo_config), "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    for split, count in tiny_demo_config["demo"]["clips"].items():
        folder = tmp_path / "results" / "data" / "clothov2" / split
        audio = AudioH5(folder / "audio.h5")
        assert len(audio) == count and audio.sample_rate == 32000
        captions = pd.read_parquet(folder / "captions.parquet")
        assert len(captions) == 5 * count
        assert set(captions["file_name"]) == set(audio.file_names)
        published = pd.read_csv(tmp_path / "results" / "raw" / clotho.captions_csv(split), dtype=str)
        assert set(captions["caption"]) == set(published[clotho.CAPTION_COLUMNS].to_numpy().ravel())
    again = run_snakemake(*data_targets(tiny_demo_config), "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def planned_rules(result) -> set[str]:
    text = result.stdout + result.stderr
    return {
        line.split()[-1].rstrip(":") for line in text.splitlines() if line.strip().startswith(("rule ", "localrule "))
    }


def with_extra_sets(config: dict) -> dict:
    """The tiny demo in the full setting: stage 1 also on AudioCaps and WavCaps stand-ins (some
    AudioCaps audio missing, some FreeSound clips carrying ClothoV2's Freesound ids)."""
    full = yaml.safe_load((REPO / "config" / "demo_full.yaml").read_text())
    config = {**config, "audiocaps": full["audiocaps"], "wavcaps": full["wavcaps"]}
    raw = Path(config["out_dir"]) / "raw"
    config["audiocaps"].update(
        captions_csv=str(raw / "audiocaps" / "train.csv"), audio_dir=str(raw / "audiocaps" / "audio")
    )
    config["wavcaps"]["raw_dir"] = str(raw / "wavcaps")
    config["demo"]["extra"] = {
        "audiocaps_clips": 12,
        "audiocaps_missing": 1,
        "wavcaps_clips": {"FreeSound": 10, "SoundBible": 4},
        "wavcaps_excluded": 3,
    }
    config["stage1"] = {**config["stage1"], "train_on": "all"}
    return config


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The tiny demo's whole chain in the full setting, built once for the scenarios below (which
    only plan against it, or check that it stays up to date)."""
    root = tmp_path_factory.mktemp("chain")
    config = with_extra_sets(tiny_config(root / "results"))
    configfile = write_config(root, config)
    first = run_snakemake("--cores", 2, "--configfile", configfile, cwd=root)
    return root, config, configfile, first


def test_the_chain_trains_every_seed_and_builds_the_tokenizer_it_needs(chain):
    root, _, _, first = chain
    out = root / "results"
    assert (first.stdout + first.stderr).count("rule train_stage1:") == 2
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


def test_the_chain_evaluates_best_and_last_weights_and_reports_them(chain):
    root, _, _, _ = chain
    out = root / "results"
    quality = pd.read_csv(out / "correspondences" / "quality.csv")
    assert quality["model"].tolist() == ["seed1", "seed2", "captions", "ensemble all", "ensemble all_captions"]
    assert quality["roc_auc"].between(0, 1).all()
    texts = pd.read_parquet(out / "data" / "clothov2" / "evaluation" / "captions.parquet")["caption"].nunique()
    models = [
        (d, w)
        for d in (
            "stage1/seed1",
            "stage1/seed2",
            "stage2/distill-seed523528930",
            "stage2/control-from-seed1-seed523528930",
        )
        for w in ("best", "last")
    ]
    for model_dir, weights in models + [("correspondences/all", "best")]:
        metrics = json.loads((out / model_dir / "evaluation" / weights / "metrics.json").read_text())
        assert metrics["captions"] == 5 * 4 and metrics["clips"] == 4  # the evaluation split
        assert metrics["dcase2025_queries"] == texts  # the demo's truth: every caption text is a query
    summary = pd.read_csv(out / "report" / "summary.csv", keep_default_na=False)
    best = [
        "seed1",
        "seed2",
        "stage 1, mean of 2 seeds",
        "ensemble all",
        "distill-seed523528930",
        "control-from-seed1-seed523528930",
    ]
    assert summary["model"].tolist() == best + [m for m in best if m != "ensemble all"]
    assert summary["weights"].tolist() == ["best"] * 6 + ["last"] * 5
    comparisons = pd.read_csv(out / "report" / "comparisons.csv")
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
    models = 2 + 1 + 2  # two stage-1 runs, their ensemble, stage 2 and its control
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


def rule_blocks(result, rule):
    """The dry-run/run printout of each job of `rule` (its input, output, wildcards lines)."""
    text = result.stdout + result.stderr
    return [block.split("\n\n")[0] for block in text.split(f"rule {rule}:")[1:]]


def test_stage1_trains_on_the_extra_sets_and_no_clotho_clip_leaks_in_through_wavcaps(chain):
    root, config, _, first = chain
    out, raw = root / "results", root / "results" / "raw"
    stage1 = rule_blocks(first, "train_stage1")[0]
    for data in ("clothov2/development", "audiocaps/train", "wavcaps/FreeSound", "wavcaps/SoundBible"):
        assert f"data/{data}/audio.h5" in stage1
    for block in rule_blocks(first, "train_stage2") + rule_blocks(first, "export_embeddings"):
        assert "audiocaps" not in block and "wavcaps" not in block  # targets only over ClothoV2 development
    log = (out / "logs" / "train_stage1" / "seed1.log").read_text()
    assert (
        "training on 62 captions of 30 clips from 4 set(s)" in log
    )  # 40 + 11 + 7 + 4 captions of 8 + 11 + 7 + 4 clips

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


def test_the_paper_config_switches_on_the_full_setting_with_train_on(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["stage1"]["train_on"] = "all"
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, config), "--cores", 1, cwd=tmp_path)
    for rule in ("download_audiocaps_captions", "download_wavcaps_exclusion", "prepare_audiocaps"):
        assert result.stdout.count(f"rule {rule}:") == 1
    for source in ("AudioSet_SL", "BBC_Sound_Effects", "FreeSound", "SoundBible"):
        assert result.stdout.count(f"rule download_wavcaps_{source}:") == 1
    assert result.stdout.count("rule prepare_wavcaps:") == 4
    for block in rule_blocks(result, "train_stage1"):
        assert "data/wavcaps/FreeSound/audio.h5" in block and "data/audiocaps/train/audio.h5" in block
    for block in rule_blocks(result, "train_stage2"):
        assert "wavcaps" not in block and "audiocaps" not in block
    assert "json_files/FreeSound/fsd_final_2s.json" in result.stdout  # the reference code's caption file
    config["wavcaps"]["caption_files"] = {"FreeSound": "fsd_final.json"}
    other = run_snakemake("-n", "--configfile", write_config(tmp_path, config), "--cores", 1, cwd=tmp_path)
    assert "json_files/FreeSound/fsd_final.json" in other.stdout and "fsd_final_2s" not in other.stdout


def test_the_paper_config_plans_the_clotho_download(tmp_path):
    result = run_snakemake("-n", "--configfile", REPO / "config" / "config.yaml", "--cores", 1, cwd=tmp_path)
    assert result.stdout.count("rule download_clotho:") == 9
    assert result.stdout.count("rule train_stage1:") == 3
    assert result.stdout.count("rule export_embeddings:") == 3
    # the paper's self-distillation, the three-member ensemble's run, and the one control both share
    assert result.stdout.count("rule train_stage2:") == 3
    for job in ("self_distill-seed523528930", "distill-seed523528930", "control-from-seed409194-seed523528930"):
        assert f"name={job}" in result.stdout
    # one model alone, the three, the caption estimator alone and beside the three (Xie et al.'s sentence model)
    assert result.stdout.count("rule ensemble_targets:") == 4 and result.stdout.count("rule embed_captions:") == 1
    captions = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["correspondences"]["captions"]
    assert captions["model"] == "sentence-transformers/all-mpnet-base-v2"
    # best and last weights of 3 stage-1 and 3 stage-2 runs, the authors' released checkpoint; the three-member ensemble
    assert result.stdout.count("rule evaluate_model:") == 13 and result.stdout.count("rule evaluate_ensemble:") == 1
    assert result.stdout.count("rule download_relevance:") == 1  # the DCASE 2025 annotations
    assert result.stdout.count("rule summary:") == 1 and result.stdout.count("rule plots:") == 1
    assert result.stdout.count("rule listening_page:") == 1
    assert result.stdout.count("rule comparisons:") == 1
    for demo_only in (
        "generate_demo_dataset",
        "build_tokenizer",
        "correspondence_quality",
        "target_mass",
        "oracle_targets",
        "audiocaps",
        "wavcaps",
    ):  # the full setting is off unless stage1.train_on is all
        assert demo_only not in result.stdout


def test_a_corrupted_download_fails_the_rule_and_leaves_no_release_file(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"]["raw_dir"] = str(tmp_path / "raw")
    config["download"].update(retries=0, backoff_s=0.0)
    name = clotho.captions_csv("validation")
    with FileServer({name: b"file_name,caption_1\n"}) as server:
        config["download"]["base_url"] = server.url
        result = run_snakemake(
            str(tmp_path / "raw" / name),
            "--cores",
            1,
            "--configfile",
            write_config(tmp_path, config),
            cwd=tmp_path,
            check=False,
        )
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "download_clotho" / f"{name}.log").read_text()
    assert f"{name}: MD5 mismatch: expected {clotho.MD5[name]}" in log
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_a_config_mistake_stops_snakemake_at_load_time_naming_the_key(tmp_path, tiny_demo_config):
    """The checks run when the workflow loads (the schema, then pipeline.config); every mistake they
    catch is tested in tests/pipeline/test_study.py."""
    tiny_demo_config["data"].update(decode_thread=2)
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, tiny_demo_config), cwd=tmp_path, check=False)
    assert result.returncode != 0 and "'decode_thread' was unexpected" in result.stdout + result.stderr


def test_lint_finds_nothing_in_either_configuration(tmp_path):
    for configfiles in (
        ["demo.yaml"],
        ["demo.yaml", "demo_full.yaml"],
        ["demo.yaml", "map.yaml"],
        ["demo.yaml", "study.yaml"],
        ["config.yaml"],
    ):
        result = run_snakemake(
            "--lint", "--configfile", *(REPO / "config" / f for f in configfiles), cwd=REPO, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_killed_run_recovers_with_the_same_command_and_training_resumes(tmp_path, tiny_demo_config):
    tiny_demo_config["stage1"]["seeds"] = [1]
    tiny_demo_config["correspondences"]["ensembles"] = {"all": [1]}
    tiny_demo_config["train"].update(epochs=12, rampdown_stop=12)
    configfile = write_config(tmp_path, tiny_demo_config)
    run = tmp_path / "results" / "stage1" / "seed1"
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        str(run / "log.csv"),
        "--cores",
        "2",
        "--configfile",
        configfile,
    ]
    first = subprocess.Popen(
        command, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    train_log = tmp_path / "results" / "logs" / "train_stage1" / "seed1.log"
    lock = tmp_path / "results" / LOCK_NAME
    deadline = time.time() + 300
    while not lock.exists():
        assert time.time() < deadline and first.poll() is None, "Snakemake did not take the results folder's lock"
        time.sleep(0.1)
    assert {k: v for k, v in json.loads(lock.read_text()).items() if k in ("pid", "cwd")} == {
        "pid": first.pid,
        "cwd": str(tmp_path),
    }
    # the same results folder from another working directory (a second clone, say) is refused
    (tmp_path / "clone").mkdir()
    second = run_snakemake(
        run / "log.csv", "--cores", 2, "--configfile", configfile, cwd=tmp_path / "clone", check=False
    )
    assert second.returncode != 0
    assert (
        f"{tmp_path / 'results'} is in use by another run of this pipeline (on this host): pid {first.pid}, "
        f"working directory {tmp_path}, since " in second.stderr
    )
    while not (train_log.exists() and "epoch 3:" in train_log.read_text(errors="replace")):
        assert time.time() < deadline and first.poll() is None, "training did not reach epoch 3"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # Snakemake and its job, at once
    first.wait()
    assert not (run / "log.csv").exists()

    # a hard-killed Snakemake leaves its locks behind: Snakemake's is unlocked once, the results
    # folder's (its holder gone) is taken over; then the same command
    run_snakemake("--unlock", "--configfile", configfile, cwd=tmp_path)
    assert lock.exists()
    run_snakemake(run / "log.csv", "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert not lock.exists()  # released when the run ends
    resumed = re.search(r"resuming \S+ after epoch (\d+)", train_log.read_text())
    assert resumed and int(resumed.group(1)) >= 2  # 0-based: epoch 3 or later was saved
    assert pd.read_csv(run / "log.csv")["epoch"].tolist() == list(range(1, 13))
    assert torch.load(run / "best.pt", weights_only=True)["seed"] == 1 and (run / "last.pt").exists()


HOLDER = """
import sys, time
from audioretrieval.pipeline.lock import acquire
acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_the_results_folder_is_refused_while_its_holder_runs_and_taken_over_once_it_is_gone(tmp_path, tiny_demo_config):
    configfile = write_config(tmp_path, tiny_demo_config)
    results = tmp_path / "results"
    for folder in ("first", "second"):  # two working directories (two clones, say) with the same out_dir
        (tmp_path / folder).mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results)],
        cwd=tmp_path / "first",
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout.readline() == "held\n"
        target = results / "raw" / clotho.captions_csv("validation")
        refused = run_snakemake(target, "--cores", 1, "--configfile", configfile, cwd=tmp_path / "second", check=False)
        assert refused.returncode != 0
        assert (
            f"{results} is in use by another run of this pipeline (on this host): pid {holder.pid}, working "
            f"directory {tmp_path / 'first'}, since " in refused.stderr
        )
        assert f"if it is gone, remove {results / LOCK_NAME}." in refused.stderr
        assert "Traceback" not in refused.stderr and "__onstart" not in refused.stderr  # one line
        assert not (results / "raw").exists()  # nothing ran
        assert not list((tmp_path / "second" / ".snakemake").glob("locks/*"))  # nor left Snakemake's own lock
        run_snakemake(target, "-n", "--configfile", configfile, cwd=tmp_path / "second")  # a dry run takes no lock
        run_snakemake("--unlock", "--configfile", configfile, cwd=tmp_path / "second")  # nor does --unlock
    finally:
        holder.kill()
        holder.wait()
    taken = run_snakemake(target, "--cores", 1, "--configfile", configfile, cwd=tmp_path / "second")  # holder gone
    assert f"{results}: taking over the lock of a run that is gone (pid {holder.pid}, " in taken.stderr
    assert target.exists() and not (results / LOCK_NAME).exists()
