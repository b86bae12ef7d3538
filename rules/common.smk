# Paths, wildcards and helpers shared by every rule file.
import hashlib
import os
import re
from pathlib import Path

from audioretrieval.config import check_config
from audioretrieval.data import clotho

check_config(config)

OUT = config["out_dir"]
RAW = config["data"]["raw_dir"]
SPLITS = list(clotho.SPLITS)
LIBRARY = Path(workflow.basedir) / "src" / "audioretrieval"
CONDA_ENV = "../envs/pipeline.yaml"


wildcard_constraints:
    split="|".join(SPLITS),


def data_file(split, name):
    """A decoded-data product of one ClothoV2 split."""
    return f"{OUT}/data/clothov2/{split}/{name}"


def raw_file(name):
    """A file of the ClothoV2 release (downloaded, or generated for the demo)."""
    return f"{RAW}/{name}"


def log_file(rule_name, *parts):
    return os.path.join(OUT, "logs", rule_name, *parts) + ".log"


def benchmark_file(rule_name, *parts):
    return os.path.join(OUT, "benchmarks", rule_name, *parts) + ".tsv"


def library_code(*modules):
    """A digest of library modules a rule runs, passed as a param so that editing them reruns the rule.

    Snakemake tracks only the script file of a script rule; content (not modification time)
    decides, so touching a module reruns nothing.
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update((LIBRARY.joinpath(*module.split(".")).with_suffix(".py")).read_bytes())
    return digest.hexdigest()[:16]


def data_outputs():
    """Decoded audio and caption tables of every split, and the release's metadata files."""
    decoded = [data_file(split, name) for split in SPLITS for name in ("audio.h5", "captions.parquet")]
    return decoded + [raw_file(clotho.metadata_csv(split)) for split in SPLITS]
