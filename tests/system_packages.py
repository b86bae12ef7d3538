"""Debian packages the slower tests need (a real SLURM, a headless browser), installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


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
    result = subprocess.run(
        ["apt-get", "install", "-y", *packages], capture_output=True, text=True, env=env, timeout=900
    )
    if result.returncode != 0:
        raise Unavailable(f"apt-get install {' '.join(packages)} failed: {result.stderr[-500:]}")
