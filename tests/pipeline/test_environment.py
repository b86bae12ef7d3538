"""The rules' conda environment and pyproject.toml must list the same dependencies."""

import re
import tomllib

import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)


def test_ci_runs_the_readme_test_command_in_a_brand_new_environment():
    demo, tests = readme_commands()[:2]
    assert "snakemake --cores 2" in demo and "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text().rstrip().splitlines()
    assert ci[-1] == tests
    assert any("-m venv" in line for line in ci) and any("/bin/activate" in line for line in ci)


def test_the_lock_pins_every_dependency_inside_the_ranges_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [
        Requirement(r)
        for r in project["dependencies"]
        + project["optional-dependencies"]["bench"]
        + project["optional-dependencies"]["test"]
    ]
    lines = (REPO / "envs" / "requirements.lock").read_text().splitlines()
    pinned = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = version
    for requirement in wanted:
        if requirement.name == "audioretrieval":  # the test extra names the bench extra
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in envs/requirements.lock"
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    for demo_or_test in readme_commands()[:2]:
        assert "-c envs/requirements.lock" in demo_or_test
