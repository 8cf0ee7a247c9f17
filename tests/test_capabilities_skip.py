"""Undeclared work is SKIPPED in pytest, with its reason, never PASSED: a plug-in declaring one
loss (tests/plugins/one_loss.py) runs a small slice of the suite in a fresh process. JUnit counts
the skips, `-rs` prints the reasons, and each skipped test still leaves exactly one
not_checkable verdict ("not declared: ...") in --backcheck-json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# directional x 7 losses (mse declared), the linear SVM, the perceptron XOR, the relu fixed cases
SLICE = "test_directional_derivative or test_svm or test_perceptron_xor or (test_fixed_case and relux)"


def test_undeclared_tests_are_skipped_with_reasons_and_reported(tmp_path):
    junit, out = tmp_path / "junit.xml", tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties", "--impl", "tests/plugins/one_loss.py:IMPL", "-rs", "-q",
         "-p", "no:cacheprovider", "-o", "addopts=", "--hypothesis-profile", "ci", "-k", SLICE,
         f"--junitxml={junit}", f"--backcheck-json={out}", "--backcheck-no-step-curve"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    cases = list(ET.parse(junit).getroot().iter("testcase"))
    skipped = {c.get("name"): c.find("skipped").get("message") for c in cases if c.find("skipped") is not None}
    ran = {c.get("name") for c in cases} - set(skipped)
    assert ran == {"test_directional_derivative[tests/plugins/one_loss.py:IMPL-mse]"}, ran
    assert len(skipped) == len(cases) - 1 >= 6 + 1 + 1 + 7
    assert all(m.startswith("not declared: ") for m in skipped.values()), skipped
    by_name = {n.split("[")[0]: m for n, m in skipped.items()}
    assert by_name["test_svm_subgradient_off_and_on_the_hinge"] == "not declared: loss 'hinge' (declared: mse)"
    assert by_name["test_perceptron_xor_does_not_converge"] == "not declared: perceptron"
    assert skipped["test_directional_derivative[tests/plugins/one_loss.py:IMPL-l1]"] == \
        "not declared: loss 'l1' (declared: mse)"
    assert "SKIPPED" in proc.stdout and "not declared: activation 'relu' in hidden layer 1" in proc.stdout
    assert f"1 passed, {len(skipped)} skipped" in proc.stdout

    # one not_checkable verdict per skipped test, with the skip's reason, from its own test
    verdicts = json.loads(out.read_text())["verdicts"]
    undeclared = [v for v in verdicts if v["message"].startswith("not declared: ")]
    assert all(v["status"] == "not_checkable" and v["implementation"] == "one-loss" for v in undeclared)
    assert sorted((v["extra"]["test"].split("::")[1], v["message"]) for v in undeclared) == sorted(skipped.items())
    assert {v["check"] for v in undeclared} >= {"directional", "training_rule", "perceptron_nonseparable", "declared"}
    # the test that ran checked something, and only inside the declaration
    checked = [v for v in verdicts if v not in undeclared]
    assert checked and all(v["check"] == "directional" and v["spec"]["loss"] == "mse" for v in checked)
    assert all({l["activation"] for l in v["spec"]["layers"]} <= {"tanh", "identity"} for v in checked)
