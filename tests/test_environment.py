"""The rules' conda environment and pyproject.toml must list the same dependencies."""

import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO

DRIVER_ONLY = {"snakemake"}  # runs the rules; not needed inside their environment


def requirements(lines) -> dict[str, str]:
    parsed = [Requirement(line) for line in lines]
    return {r.name.lower(): str(r.specifier) for r in parsed}


def test_the_conda_environment_lists_exactly_the_package_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "pipeline.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    expected = {name: spec for name, spec in requirements(project).items() if name not in DRIVER_ONLY}
    assert requirements(pip) == expected
    assert "python=3.11" in env["dependencies"]


def test_every_rule_runs_in_that_environment():
    rule_files = sorted((REPO / "rules").glob("*.smk"))
    text = "\n".join(path.read_text() for path in rule_files)
    assert 'CONDA_ENV = "../envs/pipeline.yaml"' in text
    assert text.count("conda:\n") == text.count("script:\n") > 10
