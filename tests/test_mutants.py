"""The meta-test: the property suite, run as users run it (pytest + our plugin, the `ci`
profile's examples), catches every mutant in implementations/mutants.py, every property fails
on some mutant, and the correct implementation passes them all in the same run; from the
run's records the diagnosis (properties/diagnosis.py) names each mutant's bug and none for
the correct implementation (tests/test_diagnosis.py holds it on the fixed cases)."""
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from implementations import mutants
from implementations.numpy_mlp import builtin
from properties.diagnosis import diagnose
from reference.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
GRADIENT_PROPERTIES = ("vs_jax", "vs_fd", "richardson", "slide_fd", "directional", "intermediates")


# Each property fails on a mutant whose bug it can see (deltas come before dW, so the
# intermediates property needs a mutant that breaks the backward pass itself).
PROPERTY_MUTANT = {"vs_fd": "SignFlip", "richardson": "BiasSummedNotAveraged", "slide_fd": "TransposedWeightGradient",
                   "directional": "MissingOneOverN", "intermediates": "MissingActivationDerivative"}
TESTS = {"vs_jax": "test_cost_and_gradients_vs_jax", "vs_fd": "test_gradients_vs_central_differences",
         "richardson": "test_gradients_vs_richardson", "slide_fd": "test_weights_vs_slide_checker",
         "directional": "test_directional_derivative", "intermediates": "test_layer_deltas_vs_jax"}


@pytest.fixture(scope="module")
def suite_verdicts(tmp_path_factory):
    """One pytest run of properties/test_properties.py: `vs_jax` over the built-in and every
    mutant, and each other property over its mutant (the built-in runs all of them in the main
    suite). Shrinking is skipped: whether a bug is caught is decided by the ci examples."""
    out = tmp_path_factory.mktemp("meta") / "results.json"
    impls = ["builtin"] + [f"implementations.mutants:{name}" for name in sorted(mutants.MUTANTS)]
    select = [TESTS["vs_jax"]] + [f"({TESTS[c]} and {m})" for c, m in PROPERTY_MUTANT.items()]
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "properties" / "test_properties.py"), "-q", "-p",
           "no:cacheprovider", "--no-isolation", "--hypothesis-profile=ci-noshrink", "--backcheck-no-step-curve",
           f"--backcheck-json={out}", "-k", " or ".join(select)]
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
    assert {v["check"] for v in suite_verdicts[builtin.name]} == {"vs_jax"}


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
    assert builtin.name not in failing


def test_mutants_are_small_named_changes():
    assert len(mutants.MUTANTS) >= 12
    for name, cls in mutants.MUTANTS.items():
        assert cls.bug and cls().name == f"mutant:{name}"


def test_the_correct_implementation_gets_no_diagnosis(suite_verdicts):
    assert diagnose(builtin, [Verdict.from_json(v) for v in suite_verdicts[builtin.name]]) is None


@pytest.mark.parametrize("name", sorted(mutants.MUTANTS))
def test_every_mutant_is_diagnosed_from_the_run(suite_verdicts, name):
    """From the records of the run (Hypothesis's cases, rebuilt from their labels)."""
    cls = mutants.MUTANTS[name]
    d = diagnose(mutants.get(name), [Verdict.from_json(v) for v in suite_verdicts[f"mutant:{name}"]])
    assert d is not None, f"{name} ({cls.bug}): no diagnosis"
    assert (d.category, d.activation, d.loss) == (cls.category, cls.activation_name, cls.loss_name), d.text()
    assert cls.layers is None or d.layers == cls.layers, d.text()
