"""`redlab new-lab`: the scaffold's files, and bad input refused with nothing written."""

import subprocess
import sys

import pytest

from redlab.errors import ConfigError
from redlab.labs import Lab, check_name
from redlab.newlab import new_lab


def test_the_scaffold_is_a_lab_in_the_one_model(tmp_path):
    folder, test = new_lab("maintenance-without-loss", labs_dir=tmp_path, number=8)
    assert folder == tmp_path / "08-maintenance-without-loss" and test == tmp_path / "test_lab_08.py"
    for name in ("lab.py", "lab.yaml", "guide.en.md", "guide.ja.md", "submission/serve.yaml",
                 "reference/serve.yaml", "broken/not-a-server/serve.yaml"):
        assert (folder / name).is_file(), name
    lab = Lab(folder)
    assert lab.title == "Maintenance without loss"
    assert [check_name(c) for c in lab.module.CHECKS] == ["serve.yaml is valid",
                                                          "client is served"]
    assert lab.module.DATA == {"requests": 5, "min_answered": 5}
    assert lab.broken_cases() == ["not-a-server"]
    assert "labs/08-maintenance-without-loss/submission/serve.yaml" in \
        (folder / "guide.ja.md").read_text()
    compile(test.read_text(), str(test), "exec")


def test_the_next_free_number_is_taken_by_default(tmp_path):
    (tmp_path / "07-something").mkdir()
    folder, _ = new_lab("next-one", labs_dir=tmp_path)
    assert folder.name == "08-next-one"


@pytest.mark.parametrize("name, number, words", [
    ("Bad_Name", None, "must be lower-case words joined by '-'"),
    ("", None, "must be lower-case words"),
    ("ok", 100, "not between 1 and 99"),
    ("ok", 7, "lab number 07 is taken by 07-something"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, name, number, words):
    (tmp_path / "07-something").mkdir()
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        new_lab(name, labs_dir=tmp_path, number=number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["07-something"]


def test_the_command_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "redlab.cli", "new-lab", "drive",
                          "--into", str(tmp_path), "--title", "A test drive"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote %s" % (tmp_path / "01-drive") in run.stdout
    assert Lab(tmp_path / "01-drive").title == "A test drive"
    again = subprocess.run([sys.executable, "-m", "redlab.cli", "new-lab", "drive",
                            "--into", str(tmp_path), "--number", "1"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "lab number 01 is taken" in again.stderr
