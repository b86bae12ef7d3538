"""Glue for the scripts in workflow_scripts/: logging to the rule's log file, a job's files as plain
values, and the path its child processes import from."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

# Set to 1 (in the environment of Snakemake or of the search command) to see an error's traceback.
DEBUG_VARIABLE = "AUDIORETRIEVAL_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def error_sentence(exc: BaseException) -> str:
    """An error as one line: its kind and its message (which names the file and the cause)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextlib.contextmanager
def logged_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Send stdout, stderr (progress bars included) and logging to the rule's log file. An error ends
    the job with one line, in the log and on stderr; its traceback only with AUDIORETRIEVAL_DEBUG=1."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        log = logging.getLogger("audioretrieval")
        try:
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                yield log
        except Exception as exc:
            if debugging():
                log.exception("failed")
                raise
            log.error("failed: %s", error_sentence(exc))
            sys.exit(f"error: {error_sentence(exc)} (log: {path}; {DEBUG_VARIABLE}=1 shows the traceback)")
        except BaseException as exc:  # Ctrl-C, a signal, sys.exit
            log.error("stopped: %s", error_sentence(exc))
            raise
        finally:
            root.removeHandler(handler)


def prepend_to_pythonpath(path: str | os.PathLike) -> None:
    """Make `path` the first place this process's child processes (the rules' jobs) import from."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(path), *filter(None, [os.environ.get("PYTHONPATH")])])


def named(files) -> dict:
    """A job's named input or output files (Snakemake's Namedlist) as a plain dict: name -> path, or
    a list of paths where the rule names a list."""
    return {name: value if isinstance(value, str) else [str(v) for v in value] for name, value in files.items()}
