"""Training-step throughput and peak memory of the dual encoder, and the projected ClothoV2 run.

    python benchmarks/train_step_benchmark.py [--steps 5] [--full-size-batch 64] [--quick]

(a) the demo model (config/demo.yaml) on the CPU, with and without its speed options (the
    spectrogram cache of clips no longer than the segment, PaSST's attention by the fused kernel);
(b) when a CUDA device is present: the paper's full-size model (PaSST-S, a RoBERTa-large-sized
    text encoder with roberta-large's vocabulary size; random weights, nothing downloaded), batch
    64 of 30 s clips, fp16 (with a gradient scaler) and bf16, with and without the fused attention
    and torch.compile, each with its peak GPU memory.
Each prints samples per second and the ratio to a baseline measured in the same run: the same
model's forward pass alone (no backward, no optimizer step). For (b) it also projects one ClothoV2
stage-1 run (20 epochs of 19,195 captions, and a validation of 5,225 captions and 1,045 clips after
each; an upper bound: every validation caption counted as a clip and a caption) and the share of the
GPU's dense fp16/bf16 peak that the fastest variant reaches, from 6 x parameters x tokens per
sample (PaSST: 284 tokens of each of 3 windows after patchout; the text encoder: 32 tokens).
--quick: one step of batch 8 on the CPU (a check that the benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import copy
import gc
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.model.tokenizer import build_tokenizer
from audioretrieval.training.loop import build_optimizer
from audioretrieval.training.losses import contrastive_loss

REPO = Path(__file__).resolve().parents[1]
CAPTION = "a man is speaking loudly while cars pass by on a wet road and birds sing in the trees"
CLOTHO_CAPTIONS, CLOTHO_EPOCHS, VALIDATION = 19195, 20, 5225
# dense fp16/bf16 tensor-core peaks; matched as whole words of the device name, the most specific first
PEAK_TFLOPS = {
    "H100 PCIe": 756,
    "H100": 989,
    "H200": 989,
    "A100": 312,
    "L40S": 362,
    "L40": 181,
    "A40": 150,
    "A10": 125,
    "V100": 125,
    "L4": 121,
}


def peak_tflops(device_name: str) -> float | None:
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if re.search(rf"\b{key}\b", device_name)), None)


def full_size_model_config(tokenizer: str) -> dict:
    """config/config.yaml's model with random weights and a random-init roberta-large-sized text encoder."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]
    config["audio"]["pretrained"] = False
    config["text"].update(
        name=None,
        tokenizer=tokenizer,
        random_init={"vocab_size": 50265, "hidden_size": 1024, "layers": 24, "heads": 16, "intermediate_size": 4096},
    )
    return config


def offline_tokenizer(directory: Path) -> str:
    words = CAPTION.split()
    captions = [" ".join(words[(i + k) % len(words)] for i in range(12)) for k in range(200)]
    pd.DataFrame({"caption": captions}).to_parquet(directory / "captions.parquet")
    build_tokenizer(directory / "captions.parquet", directory / "tokenizer", 1000)
    return str(directory / "tokenizer")


def measure(
    model: DualEncoder,
    train_cfg: dict,
    batch: int,
    device: torch.device,
    precision: str,
    steps: int,
    cache: bool = False,
) -> tuple[float, float, float]:
    """(samples/s of full training steps, samples/s of forward passes, peak memory in MB)."""
    model.to(device).train()
    optimizer = build_optimizer(model, train_cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    waveform = 0.1 * torch.randn(batch, model.audio.segment, device=device)
    fraction = torch.ones(batch, device=device)
    captions = [CAPTION] * batch
    clip_ids = torch.arange(batch, device=device)
    spectrograms = model.audio.spectrograms(waveform) if cache else None  # as the cache hands them on
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def forward():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            audio, text = model(waveform, fraction, captions, spectrograms)
        return contrastive_loss(model.logits(audio.float(), text.float()), clip_ids)

    def step():
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def rate(fn) -> float:
        fn()  # warm-up (and compilation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch / (time.perf_counter() - start)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_rate = rate(step)
    with torch.no_grad():
        forward_rate = rate(forward)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return train_rate, forward_rate, peak


def report(name: str, train_rate: float, forward_rate: float, peak: float) -> None:
    print(
        f"{name:<52} {train_rate:8.1f} samples/s  (forward only {forward_rate:8.1f}/s, step/forward "
        f"{train_rate / forward_rate:.2f})  peak {peak:8.0f} MB"
    )


def flop_per_sample(model: DualEncoder) -> float:
    """6 x parameters x tokens of one training pair (3 windows of 284 PaSST tokens, 32 text tokens)."""
    audio = sum(p.numel() for p in model.audio.parameters())
    text = sum(p.numel() for p in model.text.parameters())
    return 6 * (audio * 284 * 3 + text * 32)


def project(train_rate: float, forward_rate: float, flop: float) -> None:
    seconds = CLOTHO_EPOCHS * (CLOTHO_CAPTIONS / train_rate + VALIDATION / forward_rate)
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name)
    share = (
        f"{train_rate * flop / (peak * 1e12):.1%} of its {peak} TFLOPS peak" if peak else "peak unknown for this GPU"
    )
    print(
        f"compute-only projection of a ClothoV2 stage-1 run (20 epochs + validation; epoch_benchmark.py "
        f"measures the loop): {seconds / 60:.1f} min "
        f"(goal < 15 min on one H100, floor 3.3 min); training at {train_rate * flop / 1e12:.0f} TFLOPS = {share}"
    )


def cpu_demo(steps: int, batch: int) -> None:
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    print(f"CPU threads: {torch.get_num_threads()}")
    for fused, cache in ((False, False), (True, False), (False, True), (True, True)):
        config = copy.deepcopy(demo["model"])
        config["audio"]["fused_attention"] = fused
        torch.manual_seed(0)
        model = DualEncoder(config, demo["train"]["segment_s"])
        name = (
            f"(a) demo model, CPU, fp32, batch {batch}"
            + (", fused attention" if fused else "")
            + (", cache" if cache else "")
        )
        report(name, *measure(model, demo["train"], batch, torch.device("cpu"), "fp32", steps, cache))


def gpu_full_size(steps: int, batch: int) -> None:
    device = torch.device("cuda")
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    print(f"GPU: {torch.cuda.get_device_name()}")
    variants = [
        (precision, fused, compiled)
        for precision in ("fp16", "bf16")
        for fused, compiled in ((False, False), (True, False), (True, True))
    ]
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = offline_tokenizer(Path(tmp))

        def full_size(precision, fused, compiled):
            config = full_size_model_config(tokenizer)
            config["audio"]["fused_attention"] = fused
            torch.manual_seed(0)
            model = DualEncoder(config, paper["train"]["segment_s"])
            if compiled:
                model.compile_encoders()
            return measure(model, paper["train"], batch, device, precision, steps), flop_per_sample(model)

        for (precision, fused, compiled), result in each_fitting(variants, full_size):
            name = (
                f"(b) full size, {precision}, batch {batch}"
                + (", fused attention" if fused else "")
                + (", compiled" if compiled else "")
            )
            if result is None:
                print(f"{name:<52} does not fit in GPU memory")
                continue
            rates, flop = result
            report(name, *rates)
            if best is None or rates[0] > best[0]:
                best = (*rates[:2], flop)
    if best is None:
        print("compute-only projection of a ClothoV2 stage-1 run: no variant fits in this GPU's memory at batch", batch)
        return
    project(*best)


def each_fitting(variants, run):
    """(variant, run(*variant)) for each variant, None where it ran out of GPU memory: one that does
    not fit frees what it held and the next one runs."""
    for variant in variants:
        try:
            result = run(*variant)
        except torch.cuda.OutOfMemoryError:
            result = None
        gc.collect()  # the failed variant's model and activations, held by its traceback's frames
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        yield variant, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--full-size-batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="one step of batch 8: check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.steps = 1
    cpu_demo(args.steps, 8 if args.quick else 64)
    if not torch.cuda.is_available():
        print("(b) full-size model on a GPU: skipped, no CUDA device")
        return
    gpu_full_size(args.steps, args.full_size_batch)


if __name__ == "__main__":
    sys.exit(main())
