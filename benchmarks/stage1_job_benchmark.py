"""A short real stage-1 job through the Snakemake rule, at full size on a GPU.

    python benchmarks/stage1_job_benchmark.py [--clips 32] [--workdir /tmp/stage1-job-check] [--quick]

Runs `snakemake` on config/demo.yaml + config/full_size_smoke.yaml with one GPU per run
(stage1.gpus 1), one seed and one epoch on `--clips` generated clips of 15-30 s: the demo data
rules, the tokenizer, and train_stage1 itself (fp16, the fused attention, the DataLoader workers
of config/config.yaml), as a user's first job would run. Prints the job's wall time and peak
memory (Snakemake's benchmark file) and the epoch's seconds from its log. Needs a CUDA device.
--quick: the same on the CPU with the tests' tiny model and 4 clips (a check that it runs).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from audioretrieval.pipeline.config import overlaid

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stage1-job-check")
    parser.add_argument("--quick", action="store_true", help="the tests' tiny model on the CPU, 4 clips")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.quick:
        print("(3) stage-1 job through Snakemake on a GPU: skipped, no CUDA device")
        return
    overlay = REPO / ("tests/config/tiny.yaml" if args.quick else "config/full_size_smoke.yaml")
    config = overlaid(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()), yaml.safe_load(overlay.read_text()))
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if args.quick:
        args.clips, paper["train"]["num_workers"] = 4, 0
    out = args.workdir / "results"
    config.update(out_dir=str(out))
    config["data"]["raw_dir"] = str(out / "raw")
    config["demo"]["clips"] = {"development": args.clips, "validation": 8, "evaluation": 8}
    config["stage1"].update(seeds=[1], gpus=0 if args.quick else 1)
    config["correspondences"]["ensembles"] = {"all": [1]}
    config["train"].update(
        batch_size=min(64, 5 * args.clips), eval_batch_size=32, epochs=1, num_workers=paper["train"]["num_workers"]
    )
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config))
    target = out / "stage1" / "seed1" / "log.csv"
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            str(target),
            "--cores",
            str(paper["train"]["num_workers"] + 1),
            "--configfile",
            str(args.workdir / "config.yaml"),
        ],
        cwd=args.workdir,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"snakemake failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    job = pd.read_csv(out / "benchmarks" / "train_stage1" / "seed1.tsv", sep="\t").iloc[-1]
    epoch = pd.read_csv(target).iloc[-1]
    print(
        f"(3) train_stage1 through Snakemake, {5 * args.clips} captions, 1 epoch: job {job['s']:.0f} s, "
        f"peak RSS {job['max_rss']:.0f} MB; the epoch with validation {epoch['seconds']:.0f} s; "
        f"the whole invocation (data included) {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
