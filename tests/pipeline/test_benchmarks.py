"""Every benchmark runs at its quick size, so that a change that breaks one fails here (the figures
in benchmarks/README.md come from their full sizes, run by hand). The ones gpu_check.sh runs are
checked through it, so that none runs twice."""

import subprocess

import forked
import pytest
from conftest import REPO

BENCHMARKS = sorted([path.name for path in (REPO / "benchmarks").glob("*_benchmark.py")] + ["gpu_check.sh"])

# what each prints once it has measured everything it compares
PRINTS = {
    "audio_encoder_benchmark.py": "(b) paper sizes on a GPU: no CUDA device (or --quick): skipped",
    "ddp_benchmark.py": "(c) two processes, batch 4 each, gradients sent as bf16:",
    "decode_benchmark.py": "pipeline: peak memory 2N/N",
    "epoch_benchmark.py": "(a) CPU epoch, demo model, fp32",
    "ensemble_benchmark.py": "block of 64 x 64 (memory-mapped): median",
    "evaluate_benchmark.py": "score_file + multi-positive mAP@16/@10:",
    "loader_benchmark.py": "flac / int16 on 2 workers:",
    "long_file_benchmark.py": "2 min: 40 segments in",
    "plan_benchmark.py": "dry run of the paper's DAG, 2 stage-1 seeds:",
    "search_benchmark.py": "one query: text embedding + ranking + table",
    "train_step_benchmark.py": "(a) demo model, CPU, fp32, batch 8, fused attention, cache",
    "stage1_job_benchmark.py": "(3) train_stage1 through Snakemake, 20 captions, 1 epoch: job",
    "gpu_check.sh": "== verdict\nprojected ClothoV2 stage-1 run: no GPU: skipped",
}
# run by gpu_check.sh --quick; what each prints there (its loader reads int16 and zstd)
IN_GPU_CHECK = {
    "epoch_benchmark.py": PRINTS["epoch_benchmark.py"],
    "train_step_benchmark.py": PRINTS["train_step_benchmark.py"],
    "loader_benchmark.py": "zstd / int16 on 2 workers:",
    "stage1_job_benchmark.py": PRINTS["stage1_job_benchmark.py"],
    "ddp_benchmark.py": PRINTS["ddp_benchmark.py"],
}

pytestmark = pytest.mark.slow


def test_every_benchmark_is_checked_here():
    assert BENCHMARKS == sorted(PRINTS)
    assert set(IN_GPU_CHECK) <= set(BENCHMARKS)
    for script in IN_GPU_CHECK:
        assert f"benchmarks/{script}" in (REPO / "benchmarks" / "gpu_check.sh").read_text()


@pytest.mark.parametrize("script", [name for name in BENCHMARKS if name not in IN_GPU_CHECK])
def test_the_benchmark_runs_at_its_quick_size(script, tmp_path):
    command = [str(REPO / "benchmarks" / script), "--quick"]
    if script.endswith(".sh"):
        result = subprocess.run(["bash", *command], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    else:
        if "--workdir" in (REPO / "benchmarks" / script).read_text():
            command += ["--workdir", str(tmp_path)]
        result = forked.run(command, cwd=tmp_path, timeout=600)  # `python SCRIPT`, forked
    assert result.returncode == 0, result.stdout + result.stderr
    for printed in [PRINTS[script]] + (list(IN_GPU_CHECK.values()) if script == "gpu_check.sh" else []):
        assert printed in result.stdout, result.stdout


def test_the_projected_run_counts_every_epoch_once_and_the_resume_states_save_every_writes(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from epoch_benchmark import projected_s

    times = {
        "start": 10.0,
        "warm-up step": 5.0,
        "epoch": 40.0,
        "first validation": 20.0,
        "validation": 8.0,
        "best snapshot": 1.0,
        "resume state": 12.0,
        "last.pt": 4.0,
    }
    # 20 epochs saving every 10: one state (after epoch 10; none after the last), compiled validation once
    assert projected_s(times, {"epochs": 20, "save_every": 10}) == 10 + 5 + 20 * 49 + 12 + 12 + 2 * 4
    assert projected_s(times, {"epochs": 20, "save_every": 1}) == 10 + 5 + 20 * 49 + 12 + 19 * 12 + 2 * 4
