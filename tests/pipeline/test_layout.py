"""The layering that keeps the library testable without Snakemake: the chain's glue apart from the
science, short functions, rule files that write each path once, code and rules kept lint-clean, and
the files that say who may reuse it and how to cite it."""

import ast
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from conftest import REPO

LIBRARY = REPO / "src" / "audioretrieval"


def test_only_the_pipeline_glue_knows_snakemake():
    for path in LIBRARY.rglob("*.py"):
        if path.is_relative_to(LIBRARY / "pipeline"):
            continue
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
        }
        assert "snakemake" not in imported, path


def test_no_library_function_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(LIBRARY)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in LIBRARY.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, long


def test_common_smk_defines_paths_input_functions_and_targets_not_the_study():
    from audioretrieval.pipeline import study

    common = (REPO / "rules" / "common.smk").read_text()
    defined = set(re.findall(r"^def (\w+)", common, re.M))
    assert defined and not defined & set(vars(study))  # the study's logic lives in pipeline.study, tested there


def test_every_output_path_is_written_once_in_the_rules():
    text = "\n".join(path.read_text() for path in sorted((REPO / "rules").glob("*.smk")))
    paths = re.findall(r'f"(\{OUT\}/[^"]+)"', text)
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    assert paths and not repeated, repeated


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["snakefmt", "--check", "Snakefile", "rules"]],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_the_code_and_the_rules_pass_the_linters_and_formatters(command):
    """pyproject.toml configures them ([tool.ruff], [tool.snakefmt]); fix with `ruff check --fix .`,
    `ruff format .` and `snakefmt Snakefile rules`."""
    result = subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_licence_citation_and_catalog_files_agree_with_the_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == project["license"]
    assert citation["version"] == project["version"]
    assert citation["preferred-citation"]["title"].startswith("Estimated Audio-Caption Correspondences")
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["report"] is True and usage["software-stack-deployment"]["conda"] is True
    for path in re.findall(r"(config/\S+\.yaml|profiles/\w+)", usage["mandatory-flags"]["flags"]):
        assert (REPO / path).exists(), path
