import copy
import io
import os
from pathlib import Path

import numpy as np
import py7zr
import pytest
import soundfile
import yaml
from forked import snakemake

from audioretrieval.pipeline.config import check_config, overlaid

REPO = Path(__file__).resolve().parents[1]

FORMAT_SUBTYPES = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def encode(signal: np.ndarray, rate: int, extension: str = "wav") -> bytes:
    fmt, subtype = FORMAT_SUBTYPES[extension]
    buffer = io.BytesIO()
    soundfile.write(buffer, signal, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def make_archive(path: Path, members: dict) -> Path:
    """A 7z archive holding `members` (archive name -> bytes)."""
    with py7zr.SevenZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return path


def run_snakemake(*args, cwd=REPO, check=True, snakefile=REPO / "Snakefile", max_file_size=None):
    """The real Snakemake CLI on this repository's Snakefile (or another copy of the workflow);
    max_file_size: no file it or its jobs write may grow beyond that many bytes (as on a full disk)."""
    argv = ["--snakefile", str(snakefile), *map(str, args)]
    result = snakemake(argv, cwd, max_file_size)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def check_at_load(config: dict) -> None:
    """In this process, what the Snakefile checks when it loads a configuration: the schema (which
    also fills in defaults), then pipeline.config. test_workflow shows a real Snakemake stopping on
    such a mistake; the mistakes themselves need no Snakemake run."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(REPO / "config" / "schema.yaml"))
    check_config(config)


def tiny_config(out_dir: Path) -> dict:
    """config/demo.yaml with tests/config/tiny.yaml over it, writing below `out_dir`."""
    config = overlaid(
        yaml.safe_load((REPO / "config" / "demo.yaml").read_text()),
        yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text()),
    )
    config["out_dir"] = str(out_dir)
    config["data"]["raw_dir"] = str(out_dir / "raw")
    return config


@pytest.fixture
def tiny_demo_config(tmp_path) -> dict:
    """The demo configuration shrunk to seconds of work, writing below tmp_path/results."""
    return tiny_config(tmp_path / "results")


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from tiny import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


# The modules that take longest, longest first (measured with --durations): run first, so that with
# `-n auto --dist loadfile` no worker draws one of them last and runs it alone while the others idle.
LONGEST_FIRST = (
    "pipeline/test_chain.py",
    "pipeline/test_map.py",
    "pipeline/test_slurm.py",
    "pipeline/test_benchmarks.py",
    "pipeline/test_workflow.py",
    "model/test_released_checkpoint.py",
    "search/test_search.py",
)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker more than this process may use CPUs, as part of the suite waits (on SLURM's
    status checks, on killed and stalled processes, on a browser) and would leave a CPU idle (measured
    on 2 CPUs: 183 % busy with 3 workers, 171 % with 2, and no better with 4)."""
    return len(os.sched_getaffinity(0)) + 1


def pytest_xdist_setupnodes(config, specs) -> None:
    """-n: the workers share the CPUs, so each (and every process it starts) gets its share of threads
    instead of a pool per CPU: three workers of two threads on 2 CPUs spend CPU time waiting for each
    other (measured on the fast tier with -n auto: 57 CPU-seconds with one thread each, 69 without)."""
    share = max(1, len(os.sched_getaffinity(0)) // len(specs))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))  # before the workers start: they inherit it


def pytest_collection_modifyitems(items):
    """Every test that runs Snakemake or SLURM belongs to the slow tier; the longest modules go first."""
    for item in items:
        if item.get_closest_marker("snakemake") or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.slow)

    def rank(item) -> int:
        module = item.path.relative_to(REPO / "tests").as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module, and among the rest, stays


def write_config(folder: Path, config: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return str(path)


def planned_rules(result) -> set[str]:
    text = result.stdout + result.stderr
    return {
        line.split()[-1].rstrip(":") for line in text.splitlines() if line.strip().startswith(("rule ", "localrule "))
    }


def rule_blocks(result, rule):
    """The dry-run/run printout of each job of `rule` (its input, output, wildcards lines)."""
    text = result.stdout + result.stderr
    return [block.split("\n\n")[0] for block in text.split(f"rule {rule}:")[1:]]
