"""An instructor grades a whole class: one report per student and a summary."""

import csv
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

from redlab import labs

LAB = labs.find("01")


def test_grade_a_class_writes_a_report_per_student(run_folder, redlab_cmd):
    klass = run_folder / "class"
    shutil.copytree(LAB.reference, klass / "alice")
    shutil.copytree(LAB.folder / "broken" / "drifted-spare", klass / "bob")
    (klass / "carol").mkdir()                       # handed in nothing
    reports = run_folder / "reports"
    out = subprocess.run(redlab_cmd + ["grade", "01", "--class", str(klass), "--reports",
                                       str(reports)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr            # not everybody passed
    assert "alice                3 of 3 checks pass" in out.stdout, out.stdout[-2000:]
    rows = {r["student"]: r for r in csv.DictReader(open(reports / "summary.csv"))}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"]["configs identical"] == "PASS" and rows["alice"]["passed"] == "3"
    assert rows["bob"]["configs identical"] == "FAIL"
    assert rows["carol"]["passed"] == "0"
    carol = json.loads((reports / "carol.json").read_text())
    assert not carol["passed"] and "the submission has no router.j2" in json.dumps(carol["checks"])
    suite = ET.parse(reports / "bob.xml").getroot()
    assert suite.get("failures") != "0" and suite.find("properties/property").get("value") \
        == str(klass / "bob")
