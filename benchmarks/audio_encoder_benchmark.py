"""Training-step time of each audio encoder family against PaSST's, measured in the same run.

    python benchmarks/audio_encoder_benchmark.py [--steps 3] [--quick]

(a) on the CPU, one thread, at the demo's sizes: PaSST of config/demo.yaml and the MobileNetV3 and
    ATST-Frame of config/ears.yaml, batch 64 of 3 s segments whose fixed front-end features are
    precomputed (as the demo trains, with its spectrogram cache);
(b) when a CUDA device is present: the paper's sizes (config/config.yaml's model.audio and
    stage1.encoders, random weights), batch 64 of 30 s segments (3 windows of 10 s), bf16 autocast,
    with peak GPU memory.
A step is the audio tower's forward and backward pass and an Adam step; each family's time is
printed with its ratio to PaSST's. --quick: one step of batch 4 on the CPU (a check that the
benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from audioretrieval.model.audio import audio_encoder

REPO = Path(__file__).resolve().parents[1]


def encoders(main: str, others: str) -> dict[str, dict]:
    """family -> model.audio of `main`'s model and of `others`' stage1.encoders, without pretrained weights."""
    audio = yaml.safe_load((REPO / "config" / main).read_text())["model"]["audio"]
    found = {"passt": audio}
    for spec in yaml.safe_load((REPO / "config" / others).read_text())["stage1"]["encoders"].values():
        found[spec["audio"]["family"]] = spec["audio"]
    return {family: {**cfg, "pretrained": False, "weights": None} for family, cfg in found.items()}


def step_seconds(cfg: dict, segment_s: float, batch: int, steps: int, device: str, precision) -> tuple[float, float]:
    """The fastest of `steps` training steps (after one warm-up), and the peak GPU memory in GB."""
    torch.manual_seed(0)
    model = audio_encoder(cfg, segment_s, 1024).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    waveform = 0.1 * torch.randn(batch, int(segment_s * 32000), device=device)
    fraction = torch.ones(batch, device=device)
    features = model.spectrograms(waveform)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device, dtype=precision, enabled=precision is not None):
            loss = model(waveform, fraction, features).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else float("nan")
    return min(times[1:]), peak


def compare(title: str, families: dict, segment_s: float, batch: int, steps: int, device: str, precision) -> None:
    print(f"{title}, batch {batch} of {segment_s:g} s segments:")
    baseline = None
    for family, cfg in families.items():
        seconds, peak = step_seconds(cfg, segment_s, batch, steps, device, precision)
        baseline = baseline or seconds
        memory = f", peak {peak:.1f} GB" if device == "cuda" else ""
        print(f"  {family:6s} {seconds:7.3f} s/step ({seconds / baseline:.2f} x PaSST){memory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batch, steps = (4, 1) if args.quick else (64, args.steps)
    torch.set_num_threads(1)
    compare("(a) demo sizes, CPU, fp32, one thread", encoders("demo.yaml", "ears.yaml"), 3.0, batch, steps, "cpu", None)
    if torch.cuda.is_available() and not args.quick:
        title = f"(b) paper sizes, {torch.cuda.get_device_name()}, bf16"
        compare(title, encoders("config.yaml", "config.yaml"), 30.0, batch, steps, "cuda", torch.bfloat16)
    else:
        print("(b) paper sizes on a GPU: no CUDA device (or --quick): skipped")


if __name__ == "__main__":
    main()
