import shutil

from conftest import REPO

from audioretrieval.pipeline.provenance import code_digest, code_files


def make_package(root):
    package = root / "src" / "audioretrieval"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "losses.py").write_text("X = 1\n")
    (package / "unused.py").write_text("Y = 2\n")
    (package / "data" / "tables.py").write_text("from ..losses import X\n")
    (package / "train.py").write_text("def run():\n    from .data import tables  # a lazy import\n")
    script = root / "scripts" / "train.py"
    script.parent.mkdir()
    script.write_text("from audioretrieval.train import run\n")
    return script, package


def test_a_script_runs_the_modules_it_imports_transitively_and_no_others(tmp_path):
    script, package = make_package(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in code_files(script, package)}
    assert names == {
        "scripts/train.py",
        "src/audioretrieval/train.py",
        "src/audioretrieval/data/__init__.py",
        "src/audioretrieval/data/tables.py",
        "src/audioretrieval/losses.py",
    }


def test_the_digest_follows_content_not_location_or_time(tmp_path):
    script, package = make_package(tmp_path / "a")
    before = code_digest(script, package)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert code_digest(tmp_path / "b" / "scripts" / "train.py", tmp_path / "b" / "src" / "audioretrieval") == before
    (package / "unused.py").write_text("Y = 3\n")
    assert code_digest(script, package) == before
    (package / "losses.py").write_text("X = 2\n")
    assert code_digest(script, package) != before


def library_files_of(script: str) -> set[str]:
    library = REPO / "src" / "audioretrieval"
    files = code_files(REPO / "workflow_scripts" / f"{script}.py", library)
    return {p.relative_to(library).as_posix() for p in files if p.is_relative_to(library)}


def test_no_rule_of_the_data_stage_runs_training_code():
    assert not {f for f in library_files_of("decode_audio") if f.startswith(("training/", "model/"))}


def test_rules_that_only_read_embeddings_do_not_load_the_model():
    # the model imports hear21passt, timm and transformers: seconds of start-up per job
    for script in (
        "ensemble_targets",
        "evaluate_ensemble",
        "correspondence_quality",
        "target_mass",
        "summary",
        "comparisons",
        "plots",
        "caption_table",
    ):
        assert not {f for f in library_files_of(script) if f.startswith("model/")}, script


def test_a_rule_that_builds_a_model_runs_every_audio_encoder_family_the_registry_finds():
    """model/audio.py finds the families of model/encoders at run time: editing any reruns training."""
    families = {f for f in library_files_of("train") if f.startswith("model/encoders/")}
    assert {"model/encoders/passt.py", "model/encoders/mobilenet.py", "model/encoders/atst.py"} <= families
    assert "model/mel.py" in library_files_of("train")  # imported by the families
    assert not {f for f in library_files_of("ensemble_targets") if f.startswith("model/")}
