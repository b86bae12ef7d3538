"""Glue for the scripts in workflow_scripts/: logging to the rule's log file, a job's files as plain
values, and the path its child processes import from."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


@contextlib.contextmanager
def logged_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Send stdout, stderr (progress bars included) and logging to the rule's log file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                yield logging.getLogger("audioretrieval")
        except BaseException:
            logging.getLogger("audioretrieval").exception("failed")
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
