"""What the workflow refuses about its configuration files themselves: a key given twice (YAML
loaders keep the last one silently) and an out_dir that would mix outputs with other files."""

import pytest
from conftest import REPO

from audioretrieval.pipeline.config import ConfigError, check_config_files, check_out_dir


def test_a_key_given_twice_is_refused_naming_the_file_the_key_and_both_lines(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("out_dir: results/a\ntrain: {epochs: 2}\n")
    check_config_files([good])
    twice = tmp_path / "twice.yaml"
    twice.write_text("out_dir: results/a\ntrain:\n  epochs: 2\n  batch_size: 8\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=rf"^{twice}: key 'epochs' is given twice \(lines 3 and 5\); give it once$"):
        check_config_files([good, twice])


def test_the_bundled_configurations_give_no_key_twice():
    check_config_files(sorted((REPO / "config").glob("*.yaml")))


@pytest.mark.parametrize(
    "out_dir, refused",
    [
        ("/", "a folder above the repository"),
        (str(REPO), "the repository"),
        (str(REPO.parent), "a folder above the repository"),
        (str(REPO / "report"), "holds files of the repository (report/"),
        (str(REPO / "src"), "holds files of the repository (src/"),
    ],
)
def test_an_out_dir_that_would_mix_outputs_with_other_files_is_refused(out_dir, refused):
    with pytest.raises(ConfigError, match="give a folder of its own") as raised:
        check_out_dir(out_dir, REPO)
    assert f"out_dir {out_dir!r} " in str(raised.value) and refused in str(raised.value)


@pytest.mark.parametrize("out_dir", ["results/demo", str(REPO / "results"), "/tmp/somewhere/else"])
def test_a_folder_of_its_own_is_accepted(out_dir):
    check_out_dir(out_dir, REPO)  # results/ holds only a tracked .gitkeep
