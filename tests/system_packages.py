"""Debian packages the slower tests need (a real SLURM, a headless browser), installed when missing."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class Unavailable(RuntimeError):
    pass


def ensure_installed(commands: list[str], packages: list[str]) -> None:
    """Install `packages` with apt-get unless every one of `commands` is on the PATH (needs root and
    the Debian mirror); Unavailable says why not."""
    if all(shutil.which(command) for command in commands):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"{' '.join(packages)} not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(Path(tempfile.gettempdir()) / "audioretrieval-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test workers in parallel (pytest -n) install one at a time
        if all(shutil.which(command) for command in commands):
            return
        result = subprocess.run(
            ["apt-get", "install", "-y", *packages], capture_output=True, text=True, env=env, timeout=900
        )
    if result.returncode != 0:
        raise Unavailable(f"apt-get install {' '.join(packages)} failed: {result.stderr[-500:]}")
