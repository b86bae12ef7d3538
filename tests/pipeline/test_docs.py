"""The documentation a user reads: a README short enough to read first, every setting of the schema
documented in config/README.md, no broken relative link, and every test a page names existing."""

import re

import yaml
from conftest import REPO

DOCS = [
    REPO / "README.md",
    REPO / "config" / "README.md",
    REPO / "benchmarks" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
DOCUMENTED_AS_A_WHOLE = {"stage2.train", "report.reference"}  # "the keys of train", "published results"


def properties(node: dict, defs: dict) -> dict:
    """The properties of a schema node, through $ref, allOf and the `then` of its if/then blocks."""
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    merged = {}
    for part in node.get("allOf", []):
        merged |= properties(part.get("then", part), defs)
    return merged | node.get("properties", {})


def schema_keys(node: dict, defs: dict, prefix: str = "") -> list[str]:
    """Every setting of the configuration schema as a dotted path (`a.b`; `a[].b` inside a list's
    items): the keys that hold values, not the sections that group them."""
    keys = []
    for key, child in properties(node, defs).items():
        path = f"{prefix}.{key}" if prefix else key
        items = child.get("items") if isinstance(child.get("items"), dict) else {}
        if path in DOCUMENTED_AS_A_WHOLE or not (properties(child, defs) or properties(items, defs)):
            keys.append(path)
        else:
            keys += schema_keys(child, defs, path) + schema_keys(items, defs, f"{path}[]")
    return keys


def test_every_setting_of_the_schema_is_documented_in_the_configuration_reference():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    keys = schema_keys(schema, schema["$defs"])
    assert {
        "out_dir",
        "train.log_every",
        "stage2.runs[].target_tau",
        "map.run.ensemble",
        "demo.extra.wavcaps_clips",
    } <= set(keys)
    reference = (REPO / "config" / "README.md").read_text()
    missing = [key for key in keys if f"`{key}`" not in reference]
    assert not missing, f"not documented in config/README.md: {missing}"


def test_the_readme_is_read_in_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_every_relative_link_in_the_documentation_points_at_a_file_that_exists():
    broken = []
    for page in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert DOCS and not broken, broken


def test_every_test_the_documentation_names_exists_where_it_says():
    named = [
        (page, path, test)
        for page in DOCS
        for path, test in re.findall(r"`(tests/[\w/]+\.py)(?:::(test_\w+))?", page.read_text())
    ]
    assert named
    for page, path, test in named:
        assert (REPO / path).is_file(), f"{page.name}: {path}"
        if test:
            assert re.search(rf"^def {test}\(", (REPO / path).read_text(), re.M), f"{page.name}: {path}::{test}"


def test_the_documentation_pages_are_listed_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name
    assert "config/README.md" in readme
