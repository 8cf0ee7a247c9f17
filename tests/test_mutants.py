"""The meta-test: the property suite, run as users run it (pytest + our plugin, the `ci`
profile's examples), catches every mutant in implementations/mutants.py, every property fails
on some mutant, and the correct implementation passes them all in the same run."""
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from implementations import mutants
from implementations.numpy_mlp import builtin

ROOT = Path(__file__).resolve().parent.parent
GRADIENT_PROPERTIES = ("vs_jax", "vs_fd", "richardson", "slide_fd", "directional", "intermediates")


@pytest.fixture(scope="module")
def suite_verdicts(tmp_path_factory):
    """One pytest run of properties/test_properties.py over the built-in and every mutant."""
    out = tmp_path_factory.mktemp("meta") / "results.json"
    impls = ["builtin"] + [f"implementations.mutants:{name}" for name in sorted(mutants.MUTANTS)]
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "properties" / "test_properties.py"), "-q", "-p",
           "no:cacheprovider", "--no-isolation", "--hypothesis-profile=ci-noshrink", "--backcheck-no-step-curve",
           f"--backcheck-json={out}", "-k", "not references_agree"]
    cmd += [f"--impl={i}" for i in impls]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "CI": "true"})
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    by_impl = defaultdict(list)
    for v in json.loads(out.read_text())["verdicts"]:
        by_impl[v["implementation"]].append(v)
    return by_impl


def test_the_correct_implementation_is_never_caught(suite_verdicts):
    bad = [v for v in suite_verdicts[builtin.name] if v["status"] not in ("passed", "not_checkable")]
    assert not bad, [v["message"] for v in bad]
    assert {v["check"] for v in suite_verdicts[builtin.name]} >= set(GRADIENT_PROPERTIES)


@pytest.mark.parametrize("name", sorted(mutants.MUTANTS))
def test_every_mutant_is_caught(suite_verdicts, name):
    verdicts = suite_verdicts[f"mutant:{name}"]
    caught = [v for v in verdicts if v["status"] in ("failed", "error")]
    assert caught, f"{name} ({mutants.MUTANTS[name].bug}) was not caught by any property"
    assert all(v["reproducer"] for v in caught)


@pytest.mark.parametrize("check", GRADIENT_PROPERTIES)
def test_every_property_fails_on_some_mutant(suite_verdicts, check):
    failing = {impl for impl, vs in suite_verdicts.items() for v in vs if v["check"] == check and v["status"] == "failed"}
    assert failing, f"no mutant makes the {check} property fail: it proves nothing"


def test_mutants_are_small_named_changes():
    assert len(mutants.MUTANTS) >= 12
    for name, cls in mutants.MUTANTS.items():
        assert cls.bug and cls().name == f"mutant:{name}"
