"""Shared pieces of the benchmarks: test audio, and running a step in a child process while
measuring its peak memory: the proportional set size (PSS) summed over its process tree, so that
pages shared between forked workers count once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import py7zr
import soundfile

from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize


def make_clips_archive(path: Path, count: int, seconds: float = 30.0, rate: int = 44100, seed: int = 0) -> Path:
    """`count` demo-like clips of `seconds` s at `rate` Hz, as wav files in a 7z archive (cached)."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    spec = DemoSpec()
    tmp = path.with_name(path.name + ".partial")
    with py7zr.SevenZipFile(tmp, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 0}]) as z:
        for k in range(count):
            buffer = io.BytesIO()
            soundfile.write(
                buffer, synthesize(rng, draw_clip(rng, spec), seconds, rate), rate, format="WAV", subtype="PCM_16"
            )
            z.writestr(buffer.getvalue(), f"development/clip, n°{k} &amp; 'x'.wav")
    tmp.rename(path)
    return path


def run_measured(args: list[str]) -> dict:
    """Run `python <args>` in a child; returns its JSON result plus peak_mb of its process tree (PSS)."""
    proc = psutil.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = peak / 2**20
    return result
