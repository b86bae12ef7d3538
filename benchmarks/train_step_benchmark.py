"""Training-step throughput and peak memory of the dual encoder.

    python benchmarks/train_step_benchmark.py [--steps 5] [--full-size-batch 64] [--quick]

(a) the demo model (config/demo.yaml) on the CPU;
(b) when a CUDA device is present: the paper's full-size model (PaSST-S, RoBERTa-large sized
    text encoder; random weights, nothing downloaded), batch 64 of 30 s clips, mixed precision,
    without and with torch.compile.
Each prints samples per second and peak memory, and the ratio to a baseline measured in the same
run: the same model's forward pass alone (no backward, no optimizer step).
Estimated ClothoV2 stage-1 time = 20 epochs x 19,195 captions / samples per second (+ validation).
--quick: one step of batch 8 (a check that the benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from audioretrieval.losses import contrastive_loss
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.tokenizer import build_tokenizer
from audioretrieval.train import build_optimizer

REPO = Path(__file__).resolve().parents[1]
CAPTION = "a man is speaking loudly while cars pass by on a wet road and birds sing in the trees"


def full_size_model_config(tokenizer: str) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]
    config["audio"]["pretrained"] = False
    config["text"].update(name=None, tokenizer=tokenizer,
                          random_init={"hidden_size": 1024, "layers": 24, "heads": 16, "intermediate_size": 4096})
    return config


def offline_tokenizer(directory: Path) -> str:
    words = CAPTION.split()
    captions = [" ".join(words[(i + k) % len(words)] for i in range(12)) for k in range(200)]
    pd.DataFrame({"caption": captions}).to_parquet(directory / "captions.parquet")
    build_tokenizer(directory / "captions.parquet", directory / "tokenizer", 1000)
    return str(directory / "tokenizer")


def measure(model: DualEncoder, train_cfg: dict, batch: int, segment_s: float, device: torch.device, precision: str,
            steps: int) -> tuple[float, float, float]:
    """(samples/s of full training steps, samples/s of forward passes, peak memory in MB)."""
    model.to(device).train()
    optimizer = build_optimizer(model, train_cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    waveform = 0.1 * torch.randn(batch, int(segment_s * 32000), device=device)
    fraction = torch.ones(batch, device=device)
    captions = [CAPTION] * batch
    clip_ids = torch.arange(batch, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def forward():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            audio, text = model(waveform, fraction, captions)
        return contrastive_loss(audio.float() @ text.float().T / 0.05, clip_ids)

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


def report(name: str, train_rate: float, forward_rate: float, peak: float, captions: int = 19195, epochs: int = 20) -> None:
    hours = epochs * captions / train_rate / 3600
    print(f"{name:<42} {train_rate:8.1f} samples/s  (forward only {forward_rate:8.1f}/s, step/forward "
          f"{train_rate / forward_rate:.2f})  peak {peak:8.0f} MB  -> {epochs} ClothoV2 epochs: {hours:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--full-size-batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="one step of batch 8: check that it runs")
    args = parser.parse_args()
    demo_batch = 8 if args.quick else 64
    if args.quick:
        args.steps, args.full_size_batch = 1, 8

    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    torch.manual_seed(0)
    model = DualEncoder(demo["model"], demo["train"]["segment_s"])
    cpu = torch.device("cpu")
    print(f"CPU threads: {torch.get_num_threads()}")
    report(f"(a) demo model, CPU, fp32, batch {demo_batch}",
           *measure(model, demo["train"], demo_batch, demo["train"]["segment_s"], cpu, "fp32", args.steps))

    if not torch.cuda.is_available():
        print("(b) full-size model: skipped, no CUDA device")
        return
    device = torch.device("cuda")
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    print(f"GPU: {torch.cuda.get_device_name()}, {precision}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = offline_tokenizer(Path(tmp))
        for compiled in (False, True):
            torch.manual_seed(0)
            model = DualEncoder(full_size_model_config(tokenizer), paper["train"]["segment_s"])
            if compiled:
                model.audio.passt.compile()
                model.text.encoder.compile()
            name = f"(b) full size, {precision}, batch {args.full_size_batch}" + (", compiled" if compiled else "")
            report(name, *measure(model, paper["train"], args.full_size_batch, paper["train"]["segment_s"], device,
                                  precision, args.steps))
            del model
            torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
