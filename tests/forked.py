"""Command lines as the tests run them (`snakemake ARGS`, and `python -m MODULE ARGS`, `python -c CODE ARGS`
or `python SCRIPT ARGS`), each in a process of its own, forked from a server that imported Snakemake,
torch and the model libraries once, instead of a new interpreter that imports them again (two of a
Snakemake dry run's three CPU-seconds; five of the six a search or training command spends before its
first line of work).

A forked process gets the call's arguments (and `sys.argv`), working directory and environment, writes
to its own stdout and stderr, can be signalled and killed, and runs the exit handlers a process's exit
runs (Snakemake's, and the pipeline's lock release), so a test sees what a shell would. The server
imports no module of this repository: a process imports the pipeline's library itself, so a copied
workflow runs its own copy."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import resource
import runpy
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER = multiprocessing.get_context("forkserver")
SERVER.set_forkserver_preload(
    ["snakemake.cli", "torch", "hear21passt.models.passt", "transformers.models.roberta.modeling_roberta"]
)


def limit_file_size(size: int) -> None:
    """In a child process: a write beyond `size` bytes fails with EFBIG, as one on a full disk fails with
    ENOSPC (the signal a write past the limit sends is ignored, in the children too)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _command_line(args: list[str], cwd: str, env: dict, stdout: str, stderr: str, max_file_size) -> None:
    """The child: `args` as a command line: ["snakemake", ...], or what follows `python`: ["-m", module, ...],
    ["-c", code, ...] or [script.py, ...]."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        file = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(file, fd)
        os.close(file)
    if max_file_size is not None:
        limit_file_size(max_file_size)
    try:
        if args[0] == "snakemake":
            from snakemake.cli import main

            sys.argv = args
            main(args[1:])
        elif args[0] == "-m":
            sys.argv = [args[1], *args[2:]]  # runpy puts the module's path first, as `python -m` does
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        elif args[0].endswith(".py"):
            sys.argv = list(args)
            sys.path.insert(0, str(Path(args[0]).resolve().parent))  # as `python SCRIPT` puts its folder first
            runpy.run_path(args[0], run_name="__main__")
        else:
            raise ValueError(f"not a command line these tests run: {args[:2]}")
    finally:
        atexit._run_exitfuncs()  # a multiprocessing child ends with os._exit, which skips them


class Process:
    """A started command line: the part of subprocess.Popen the tests use (text output, read at the end)."""

    def __init__(self, args: list[str], cwd=None, env: dict | None = None, max_file_size: int | None = None):
        self.args = args
        self._scratch = tempfile.TemporaryDirectory(prefix="forked-")
        self._out, self._err = Path(self._scratch.name) / "stdout", Path(self._scratch.name) / "stderr"
        self._out.touch()
        self._err.touch()
        environment = dict(os.environ if env is None else env)
        self._process = SERVER.Process(
            target=_command_line,
            args=(args, str(cwd or os.getcwd()), environment, str(self._out), str(self._err), max_file_size),
        )
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode  # -N once a signal N ended it, as Popen's

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        output = self._out.read_text(errors="replace"), self._err.read_text(errors="replace")
        self._scratch.cleanup()
        return output


def run(args: list[str], cwd=None, env=None, max_file_size=None, timeout=None) -> subprocess.CompletedProcess:
    """The command line run to its end (killed after `timeout` seconds): its exit status and output,
    as subprocess.run(..., capture_output=True, text=True) gives them."""
    process = Process(args, cwd, env, max_file_size)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(args, process.returncode, *process.communicate())


def snakemake(argv: list[str], cwd, max_file_size: int | None = None) -> subprocess.CompletedProcess:
    """`snakemake ARGV` run in `cwd` with this process's environment."""
    return run(["snakemake", *argv], cwd, max_file_size=max_file_size)
