#!/usr/bin/env bash
# The GPU paths in one command, on a machine with one GPU and nothing downloaded (about 15 minutes,
# an estimate: it has not run on a GPU yet), ending with the verdict line
#   "projected ClothoV2 stage-1 run: N min (goal 15): PASS/FAIL":
#   bash benchmarks/gpu_check.sh [--quick]   (--quick: every part at its quick size, as the test suite runs it)
#   WORKDIR=DIR keeps the generated data and results in DIR; by default a temporary folder removed at the end.
# (0) one whole epoch of the real training loop on a ClothoV2-sized generated dataset, for each
#     precision the GPU has, eager and compiled, with validation and checkpoint writes, and the
#     projected stage-1 run it gives (benchmarks/epoch_benchmark.py): the verdict;
# (1) full-size training steps at batch 64, fp16 and bf16, with and without the fused attention and
#     torch.compile, with peak GPU memory, and a compute-only projection of a ClothoV2 run and the share of the
#     GPU's peak (benchmarks/train_step_benchmark.py);
# (2) the loader on 30 s clips with the DataLoader workers a training job uses (loader_benchmark.py);
# (3) a short real stage-1 job through the Snakemake rule on generated 30 s clips (stage1_job_benchmark.py);
# (4) where two GPUs exist, training steps in two processes (torchrun, NCCL) against one, with fp32 and
#     bf16 gradients (ddp_benchmark.py).
# Without a GPU it runs what a CPU can ((0) and (1) for the demo model, (2), (4) over gloo as a check) and
# says what it skips.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
workers="${WORKERS:-8}"   # train.num_workers of config/config.yaml
if [[ -z "${WORKDIR-}" ]]; then
    WORKDIR="$(mktemp -d)"
    trap 'rm -rf "$WORKDIR"' EXIT
fi
case "${1-}" in
    "") ;;
    --quick) quick="--quick"; workers=2 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--quick]" >&2; exit 2 ;;
esac
echo "== (0) one epoch of the training loop, ClothoV2-sized"
python benchmarks/epoch_benchmark.py --workdir "$WORKDIR/epoch" $quick | tee "$WORKDIR/epoch.txt"
echo "== (1) training steps"
python benchmarks/train_step_benchmark.py $quick
echo "== (2) loader, 30 s clips, $workers workers"
python benchmarks/loader_benchmark.py --clips 64 --batches 10 --workers "$workers" --formats int16 zstd $quick
echo "== (3) a stage-1 job through Snakemake"
python benchmarks/stage1_job_benchmark.py --workdir "$WORKDIR" $quick
echo "== (4) two processes (DistributedDataParallel)"
python benchmarks/ddp_benchmark.py --workdir "$WORKDIR/ddp" $quick
echo "== verdict"
grep "^projected ClothoV2 stage-1 run:" "$WORKDIR/epoch.txt"
