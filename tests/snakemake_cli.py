"""The Snakemake command line as the tests run it: `snakemake.cli.main`, the function the
`snakemake` command calls, in a process of its own for every call. The process is forked from a
server that imported Snakemake once, instead of a new interpreter that imports it again: the
import is two of the three CPU-seconds of a dry run, and the suite runs Snakemake about 60 times.
The forked process gets the call's arguments, working directory and environment, writes to its
own stdout and stderr, and runs the exit handlers a process's exit runs (Snakemake's, and the
pipeline's lock release), so a test sees what a shell would."""

import atexit
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(["snakemake.cli"])


def limit_file_size(size: int) -> None:
    """In a child process (preexec_fn): a write beyond `size` bytes fails with EFBIG, as one on a full disk
    fails with ENOSPC (the signal a write past the limit sends is ignored, in the children too)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _snakemake_process(argv: list[str], cwd: str, env: dict, stdout: str, stderr: str, max_file_size) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        file = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(file, fd)
        os.close(file)
    sys.argv = ["snakemake", *argv]
    if max_file_size is not None:
        limit_file_size(max_file_size)
    from snakemake.cli import main

    try:
        main(argv)
    finally:
        atexit._run_exitfuncs()  # a multiprocessing child ends with os._exit, which skips them


def snakemake(argv: list[str], cwd, max_file_size: int | None = None) -> subprocess.CompletedProcess:
    """`snakemake ARGV` run in `cwd` with this process's environment: its exit status and output."""
    with tempfile.TemporaryDirectory(prefix="snakemake-cli-") as scratch:
        stdout, stderr = Path(scratch) / "stdout", Path(scratch) / "stderr"
        stdout.touch()
        stderr.touch()
        process = _SERVER.Process(
            target=_snakemake_process,
            args=(argv, str(cwd), dict(os.environ), str(stdout), str(stderr), max_file_size),
        )
        process.start()
        process.join()
        return subprocess.CompletedProcess(
            ["snakemake", *argv],
            process.exitcode,
            stdout.read_text(errors="replace"),
            stderr.read_text(errors="replace"),
        )
