"""What keeps a first GPU run from crashing, checked on the CPU: resume state mapped from its file
rather than copied into every process, host-memory caches refused on a GPU, a process group that
outwaits the first rank's checkpoint writes, and a benchmark variant that runs out of GPU memory not
ending the others."""

import importlib.util
from datetime import timedelta

import pytest
import torch
from conftest import REPO

from audioretrieval.files import save_torch_atomically
from audioretrieval.training import distributed
from audioretrieval.training.loop import check_device_settings
from audioretrieval.training.state import read_state


def test_a_resume_state_is_mapped_from_its_file_not_copied_into_the_process(tmp_path):
    path = tmp_path / "state.pt"
    save_torch_atomically({"model": {"w": torch.arange(100_000.0)}, "epoch": 3}, path)
    state = read_state(path)
    assert torch.equal(state["model"]["w"], torch.arange(100_000.0)) and state["epoch"] == 3
    with open("/proc/self/maps") as maps:  # the pages of every process that maps it are the file's
        assert str(path) in maps.read()


def test_the_spectrogram_cache_is_refused_on_a_gpu_and_allowed_on_the_cpu():
    with pytest.raises(ValueError, match=r"train.cache_spectrograms is true on cuda:0.*host memory"):
        check_device_settings({"cache_spectrograms": True}, torch.device("cuda", 0))
    check_device_settings({"cache_spectrograms": True}, torch.device("cpu"))
    check_device_settings({"cache_spectrograms": False}, torch.device("cuda", 0))


def test_a_benchmark_variant_that_runs_out_of_gpu_memory_leaves_the_others_running():
    path = REPO / "benchmarks" / "train_step_benchmark.py"
    spec = importlib.util.spec_from_file_location("train_step_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)

    def run(precision, fused):
        if not fused:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 13.00 GiB")
        return precision

    variants = [("fp16", False), ("fp16", True), ("bf16", True)]
    assert list(benchmark.each_fitting(variants, run)) == [
        (("fp16", False), None),
        (("fp16", True), "fp16"),
        (("bf16", True), "bf16"),
    ]

    def broken(precision, fused):
        raise RuntimeError("not a memory error")

    with pytest.raises(RuntimeError, match="not a memory error"):  # only running out of memory is survived
        list(benchmark.each_fitting(variants, broken))


def test_the_process_group_waits_an_hour_unless_the_job_says_otherwise(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_VARIABLE, raising=False)
    assert distributed.process_group_timeout() == timedelta(hours=1)  # not NCCL's 10 minutes
    monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, "120")
    assert distributed.process_group_timeout() == timedelta(hours=2)
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, bad)
        with pytest.raises(ValueError, match=rf"AUDIORETRIEVAL_PROCESS_GROUP_TIMEOUT_MIN='{bad}': expected a positive"):
            distributed.process_group_timeout()
