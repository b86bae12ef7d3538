"""A headless Chromium for the tests that open the pipeline's pages: the page's DOM after its scripts
ran, and a screenshot to look at."""

from __future__ import annotations

import subprocess
from pathlib import Path

from system_packages import ensure_installed

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--mute-audio"]


def chromium() -> str:
    ensure_installed(["chromium"], ["chromium"])
    return "chromium"


def rendered_dom(page: Path, wait_ms: int = 5000) -> str:
    """The page's DOM once its scripts and media loading had `wait_ms` of (virtual) time."""
    result = subprocess.run(
        [chromium(), *FLAGS, f"--virtual-time-budget={wait_ms}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, out: Path, size: str = "1500,1100") -> Path:
    subprocess.run(
        [chromium(), *FLAGS, f"--window-size={size}", f"--screenshot={out}", page.resolve().as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return out
