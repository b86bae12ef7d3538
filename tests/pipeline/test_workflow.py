"""The workflow through the real Snakemake CLI: the data, the paper configuration's plan, downloads,
configuration mistakes, interruptions and the results folder's lock (the whole chain: test_chain.py)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, rule_blocks, run_snakemake, write_config
from http_server import FileServer

from audioretrieval.data import clotho
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.model.text import TextEncoder
from audioretrieval.model.text_states import preload
from audioretrieval.model.tokenizer import normalize_caption
from audioretrieval.pipeline.lock import LOCK_NAME

pytestmark = pytest.mark.snakemake
# model.audio of each other family at the demo's size (config/ears.yaml's)
DEMO_ENCODERS = {
    name: spec["audio"]
    for name, spec in yaml.safe_load((REPO / "config" / "ears.yaml").read_text())["stage1"]["encoders"].items()
}


def data_targets(config):
    out = config["out_dir"]
    return [f"{out}/data/clothov2/{s}/{name}" for s in clotho.SPLITS for name in ("audio.h5", "captions.parquet")]


def test_demo_data_targets_are_built_offline_and_then_up_to_date(tmp_path, tiny_demo_config):
    # with the demo's frozen MiniLM: its states of a split's captions are a target too (model.text_states)
    tiny_demo_config["model"]["text"] = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["model"]["text"]
    states = tmp_path / "results" / "text_states" / "validation.h5"
    targets = [*data_targets(tiny_demo_config), states]
    configfile = write_config(tmp_path, tiny_demo_config)
    run_snakemake(*targets, "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    for split, count in tiny_demo_config["demo"]["clips"].items():
        folder = tmp_path / "results" / "data" / "clothov2" / split
        audio = AudioH5(folder / "audio.h5")
        assert len(audio) == count and audio.sample_rate == 32000
        captions = pd.read_parquet(folder / "captions.parquet")
        assert len(captions) == 5 * count
        assert set(captions["file_name"]) == set(audio.file_names)
        published = pd.read_csv(tmp_path / "results" / "raw" / clotho.captions_csv(split), dtype=str)
        assert set(captions["caption"]) == set(published[clotho.CAPTION_COLUMNS].to_numpy().ravel())
    captions = pd.read_parquet(tmp_path / "results" / "data" / "clothov2" / "validation" / "captions.parquet")
    encoder = TextEncoder(tiny_demo_config["model"]["text"], 8)
    assert preload(encoder, states) == len({normalize_caption(c) for c in captions["caption"]})
    again = run_snakemake(*targets, "--cores", 2, "--configfile", configfile, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_multi_gpu_training_job_asks_for_a_process_and_its_loader_workers_per_gpu(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["stage1"]["gpus"] = 2
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, config), "--cores", 64, cwd=tmp_path)
    workers = config["train"]["num_workers"]
    for rule in ("train_stage1", "train_stage2"):
        blocks = rule_blocks(result, rule)
        assert blocks and all(f"threads: {2 * (workers + 1)}" in b and "gpu=2" in b for b in blocks), rule


def test_the_paper_config_switches_on_the_full_setting_with_train_on(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["stage1"]["train_on"] = "all"
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, config), "--cores", 1, cwd=tmp_path)
    for rule in ("download_audiocaps_train_captions", "download_wavcaps_exclusion", "prepare_audiocaps"):
        assert result.stdout.count(f"rule {rule}:") == 1
    assert "rule download_audiocaps_test_captions:" not in result.stdout  # AudioCaps test is not a test set here
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


def test_the_paper_config_scores_every_model_on_audiocaps_test_when_asked(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["stage1"]["train_on"] = "all"
    config["evaluation"]["sets"] = ["clothov2", "audiocaps"]
    result = run_snakemake("-n", "--configfile", write_config(tmp_path, config), "--cores", 1, cwd=tmp_path)
    (download,) = rule_blocks(result, "download_audiocaps_test_captions")
    assert "output: resources/audiocaps/test.csv" in download
    assert result.stdout.count("rule prepare_audiocaps_test:") == 1
    for rule in ("prepare_audiocaps", "prepare_wavcaps"):  # AudioCaps train and AudioSet_SL leave test's clips out
        held_out = [block for block in rule_blocks(result, rule) if "resources/audiocaps/test.csv" in block]
        assert len(held_out) == 1
    assert "wavcaps/AudioSet_SL/excluded_clips.csv" in held_out[0]
    on_audiocaps = [block for block in rule_blocks(result, "evaluate_model_on_set") if "audiocaps/test" in block]
    assert len(on_audiocaps) == len(rule_blocks(result, "evaluate_model")) > 0
    assert result.stdout.count("rule evaluate_released_on_set:") == result.stdout.count("rule evaluate_released:") > 0
    (summary,) = rule_blocks(result, "summary")
    assert "evaluation/audiocaps/best/metrics.json" in summary


def planned(configfile, cwd):
    """Every rule a dry run of a configuration plans, with its job count."""
    result = run_snakemake("-n", "--configfile", configfile, "--cores", 1, cwd=cwd)
    return {
        rule: result.stdout.count(f"rule {rule}:") for rule in set(re.findall(r"^rule (\w+):", result.stdout, re.M))
    }


@pytest.mark.parametrize("family", ["mn", "atst"])
def test_every_audio_encoder_family_plans_every_rule_of_the_demo_and_of_the_paper_config(tmp_path, family):
    for name, encoder in (("demo.yaml", DEMO_ENCODERS[family]), ("config.yaml", None)):
        config = yaml.safe_load((REPO / "config" / name).read_text())
        passt = planned(REPO / "config" / name, tmp_path)
        paper_encoders = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["stage1"]["encoders"]
        config["model"]["audio"] = encoder or paper_encoders[family]["audio"]
        assert planned(write_config(tmp_path / name, config), tmp_path) == passt, name


def test_the_paper_config_plans_the_clotho_download(tmp_path):
    result = run_snakemake("-n", "--configfile", REPO / "config" / "config.yaml", "--cores", 1, cwd=tmp_path)
    assert result.stdout.count("rule download_clotho:") == 9
    # three PaSST seeds, one MobileNetV3 and one ATST-Frame run (stage1.encoders)
    assert result.stdout.count("rule train_stage1:") == 5
    assert result.stdout.count("rule export_embeddings:") == 5
    for run in ("mn-seed409194", "atst-seed409194"):
        assert f"run={run}" in result.stdout
    # the paper's self-distillation, the runs from the three seeds and from the three ears, the one control they share
    assert result.stdout.count("rule train_stage2:") == 4
    for job in (
        "self_distill-seed523528930",
        "distill-seed523528930",
        "distill_mixed-seed523528930",
        "control-from-seed409194-seed523528930",
    ):
        assert f"name={job}" in result.stdout
    # one model alone, the three, the caption estimator alone and beside the three (Xie et al.'s sentence
    # model), the three ears
    assert result.stdout.count("rule ensemble_targets:") == 5 and result.stdout.count("rule embed_captions:") == 1
    captions = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["correspondences"]["captions"]
    assert captions["model"] == "sentence-transformers/all-mpnet-base-v2"
    # 5 stage-1 and 4 stage-2 runs (best and last weights in one job each), the authors' released checkpoint
    # and the DCASE 2025 baseline's (best); the two ensembles of several models
    assert result.stdout.count("rule evaluate_model:") == 9 and result.stdout.count("rule evaluate_released:") == 2
    assert result.stdout.count("rule evaluate_ensemble:") == 2
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
    twice = tmp_path / "twice.yaml"  # the configuration files themselves: a key given twice
    twice.write_text(f"out_dir: {tmp_path / 'a'}\nout_dir: {tmp_path / 'b'}\n")
    result = run_snakemake("-n", "--configfile", REPO / "config" / "demo.yaml", twice, cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert f"{twice}: key 'out_dir' is given twice (lines 1 and 2)" in result.stdout + result.stderr


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
    while not (train_log.exists() and "epoch 3 (saved" in train_log.read_text(errors="replace")):
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
    assert resumed and int(resumed.group(1)) >= 3  # "epoch 3 (saved" is logged once its state is saved
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
