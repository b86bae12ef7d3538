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
    "decode_benchmark.py": "pipeline: peak memory 2N/N",
    "ensemble_benchmark.py": "block of 64 x 64 (memory-mapped): median",
    "evaluate_benchmark.py": "score_file + multi-positive mAP@16/@10:",
    "loader_benchmark.py": "flac / int16 on 2 workers:",
    "plan_benchmark.py": "dry run of the paper's DAG, 2 stage-1 seeds:",
    "search_benchmark.py": "one query: text embedding + ranking + table",
    "train_step_benchmark.py": "(a) demo model, CPU, fp32, batch 8, fused attention, cache",
    "stage1_job_benchmark.py": "(3) train_stage1 through Snakemake, 20 captions, 1 epoch: job",
    "gpu_check.sh": "(3) train_stage1 through Snakemake",
}
# run by gpu_check.sh --quick; what each prints there (its loader reads int16 and zstd)
IN_GPU_CHECK = {
    "train_step_benchmark.py": PRINTS["train_step_benchmark.py"],
    "loader_benchmark.py": "zstd / int16 on 2 workers:",
    "stage1_job_benchmark.py": PRINTS["stage1_job_benchmark.py"],
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
