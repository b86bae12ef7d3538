"""Planning the paper's DAG: `snakemake -n` on config/config.yaml with five stage-1 seeds.

    python benchmarks/plan_benchmark.py [--seeds 5] [--repeats 3] [--quick]

Times (best of --repeats) a dry run of the whole workflow in a scratch directory (nothing exists
yet, so every job is planned: downloads, decoding, five stage-1 runs, exports, ensemble, stage 2
and its control, evaluations, reports). Baseline from the same run: a dry run of a one-rule
Snakefile (Snakemake's own start-up). Target: under 3 s. --quick: two seeds, once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def dry_run(snakefile: Path, cwd: Path, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile", str(snakefile), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two seeds, once: check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.repeats = 2, 1
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["stage1"]["seeds"] = list(range(409194, 409194 + args.seeds))
    ensembles = config["correspondences"]["ensembles"]
    ensembles.update(all=config["stage1"]["seeds"], all_captions=[*config["stage1"]["seeds"], "captions"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        (tmp / "Snakefile").write_text('rule all:\n    output: "x"\n    shell: "touch {output}"\n')
        base = min(dry_run(tmp / "Snakefile", tmp) for _ in range(args.repeats))
        plan = min(
            dry_run(REPO / "Snakefile", tmp, "--configfile", str(tmp / "config.yaml")) for _ in range(args.repeats)
        )
    print(f"dry run of a one-rule Snakefile (baseline):    {base:.2f} s")
    print(f"dry run of the paper's DAG, {args.seeds} stage-1 seeds: {plan:.2f} s   ratio to baseline {plan / base:.2f}")
    print(f"target: under 3 s -> {'met' if plan < 3.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
