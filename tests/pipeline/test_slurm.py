"""The pipeline through a real SLURM: every job submitted with sbatch via profiles/slurm."""

import contextlib
import json
import re

import pytest
import yaml
from conftest import REPO, run_snakemake
from slurm_cluster import Unavailable, jobs_in_controller, single_node_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.snakemake]

# Settings for this single-node test cluster only, overlaid on the profile users run: status from
# squeue (no accounting database here), quick first status check, no account to guess.
TEST_CLUSTER = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-no-account",
    "--default-resources",
    "slurm_partition=cpu",
    "mem_mb=2000",
    "runtime=30",
]


@pytest.fixture
def slurm(tmp_path):
    with contextlib.ExitStack() as stack:
        try:
            work = stack.enter_context(single_node_slurm(tmp_path / "slurm"))
        except Unavailable as exc:
            pytest.skip(f"no SLURM here: {exc}")
        yield work


def test_training_and_evaluation_run_as_slurm_jobs_with_their_gpu_requests(tmp_path, tiny_demo_config, slurm):
    tiny_demo_config["stage1"].update(seeds=[1], gpus=1)  # the GPU request path (the node's GPU is fake)
    tiny_demo_config["correspondences"]["ensembles"] = {"all": [1]}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(tiny_demo_config))
    data = [
        tmp_path / "results" / "data" / "clothov2" / split / name
        for split in ("development", "validation", "evaluation")
        for name in ("audio.h5", "captions.parquet")
    ]
    run_snakemake(*data, "--cores", 2, "--configfile", configfile, cwd=tmp_path)  # the data here, the rest on SLURM
    target = tmp_path / "results" / "stage1" / "seed1" / "evaluation" / "best" / "metrics.json"
    run_snakemake(
        target, "--profile", REPO / "profiles" / "slurm", *TEST_CLUSTER, "--configfile", configfile, cwd=tmp_path
    )
    assert json.loads(target.read_text())["captions"] == 20
    jobs = jobs_in_controller()
    assert jobs and all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    gpu_jobs = [job for job in jobs if job["Partition"] == "gpu"]
    requests = [job.get("TresPerJob", "") + job.get("TresPerNode", "") for job in gpu_jobs]
    # train_stage1 and evaluate_model, sent to the gpu partition by the profile, each with one GPU
    assert len(gpu_jobs) == 2 and all("gpu:1" in request for request in requests), requests
    assert not any("gpu" in job.get("TresPerJob", "") for job in jobs if job["Partition"] != "gpu")
    assert len(jobs) - len(gpu_jobs) == 1  # the tokenizer, on the CPU partition
    train = next(job for job in gpu_jobs if job["TimeLimit"] == "04:00:00")  # train_stage1: runtime 240
    assert train["NumCPUs"] == "1"  # train.num_workers + 1 with the tiny config's 0 workers


def test_every_job_that_requests_a_gpu_goes_to_the_gpu_partition(tmp_path):
    """The paper's setting planned through the profile users submit with: a GPU request sent to the
    CPU partition would be refused by sbatch."""
    result = run_snakemake(
        "-n", "--profile", REPO / "profiles" / "slurm", "--configfile", REPO / "config" / "config.yaml", cwd=tmp_path
    )
    jobs = [block for block in result.stdout.split("\n\n") if re.search(r"^(local)?rule \w+:", block, re.M)]
    gpu_jobs = [job for job in jobs if re.search(r"resources:.*\bgpu=1\b", job)]
    gpu_rules = {re.search(r"rule (\w+):", job).group(1) for job in gpu_jobs}
    assert {
        "train_stage1",
        "train_stage2",
        "export_embeddings",
        "embed_captions",
        "evaluate_model",
        "evaluate_released",
    } <= gpu_rules
    for job in gpu_jobs:
        assert "slurm_partition=gpu" in job, job
