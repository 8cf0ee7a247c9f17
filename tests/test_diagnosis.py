"""The diagnosis (properties/diagnosis.py), held from both sides: every mutant gets one that
names its category, its layers (where the mutant states them) and its activation or loss; the
built-in and the zoo of correct implementations get none, not even when told they failed.

Verdicts are made in-process with run_checks over the fixed cases the implementation declares
(vs_jax and intermediates): the same records a pytest run collects, in a fraction of the time."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from implementations import mutants
from implementations.numpy_mlp import NumpyMLP, builtin
from implementations.registry import load
from properties import diagnosis
from properties.checks import run_checks
from properties.fixed_cases import fixed_cases
from properties.strategies import cases
from reference.verdict import ERROR, FAILED, Verdict

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted(p.name for p in (ROOT / "tests" / "zoo").glob("[a-z]*.py"))
STUDENT = str(ROOT / "examples" / "buggy_student.py") + ":StudentMLP"


@lru_cache(maxsize=None)
def verdicts_of(impl, every_case: bool = True) -> tuple:
    """vs_jax and intermediates on the fixed cases impl declares; not every_case: the first
    with each hidden activation, loss and dtype (a JIT-compiling plug-in pays per network)."""
    out, seen = [], set()
    for case in fixed_cases().values():
        if impl.capabilities.supports(case.spec) is not None:
            continue
        new = {case.spec.layers[0].activation, case.spec.loss, case.spec.dtype} - seen
        if every_case or new or case.label.startswith("seed"):
            seen |= new
            out += run_checks(impl, case, checks=("vs_jax", "intermediates"))
    return tuple(out)


@lru_cache(maxsize=None)
def mutant_diagnosis(name):
    impl = mutants.get(name)
    return diagnosis.diagnose(impl, verdicts_of(impl))


def zoo_impl(name):
    if name == "torch_user.py" and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    return load(str(ROOT / "tests" / "zoo" / name) + ":IMPL", isolate=False)


# --- the mutants -----------------------------------------------------------------------------

def test_every_category_has_two_mutants():
    for cls in mutants.MUTANTS.values():
        assert cls.category in diagnosis.CATEGORIES, cls
        assert cls.layers is None or (isinstance(cls.layers, tuple) and all(j >= 1 for j in cls.layers)), cls
    counts = Counter(cls.category for cls in mutants.MUTANTS.values())
    assert {c: counts[c] for c in diagnosis.CATEGORIES if counts[c] < 2} == {}


@pytest.mark.parametrize("name", sorted(mutants.MUTANTS))
def test_every_mutant_is_diagnosed(name):
    cls = mutants.MUTANTS[name]
    d = mutant_diagnosis(name)
    assert d is not None, f"{name} ({cls.bug}): no diagnosis"
    assert d.category == cls.category, d.text()
    if cls.layers is not None:
        assert d.layers == cls.layers, d.text()
    assert d.activation == cls.activation_name and d.loss == cls.loss_name, d.text()
    assert d.shape and d.checked > 0 and d.agreed == d.checked, d.text()
    head = d.headline()
    assert head.startswith(f"mutant:{name}: {cls.category}") and d.shape in head
    # the reproducer names the mutant so that it imports from any folder
    assert f"reproduce('implementations.mutants:{name}', 'vs_jax'" in d.reproducer


def test_the_words_name_the_wrong_blocks_and_the_conditions():
    d = mutant_diagnosis("MissingActivationDerivative")
    text = d.text()
    assert "layer 1: dC/dW and dC/db wrong" in text and "layer 2 right" in text
    assert "deltas dC/dz are wrong in layer 1, right in layer 2" in text
    assert "wrong only on a network whose layer 1 is not identity" in text
    assert "right with" in text and "an identity layer in front" in text
    assert "all" in d.confidence() and f"{d.checked} cases agree" in d.confidence()
    d = mutant_diagnosis("BiasSummedNotAveraged")
    assert "N times" in d.shape and "dC/db wrong" in d.text() and "dC/dW right" in d.text()
    assert "right with N = 1" in d.text()
    d = mutant_diagnosis("MissingRegularizerTerm")
    assert "wrong on every network with λ > 0" in d.text() and "right with λ = 0" in d.text()


def test_shape_errors_of_swapped_layers_are_explained_and_grouped():
    d = mutant_diagnosis("SwappedLayerGradients")
    shape_errors = [g for g in d.errors if " has shape " in g.message]
    assert len(shape_errors) == 1 and shape_errors[0].count > 1   # one group, numbers aside
    assert f"the {shape_errors[0].count} shape errors are the same bug" in d.text()


def test_json_records_give_the_same_diagnosis():
    impl = mutants.get("SigmoidDerivativeAtActivation")
    again = [Verdict.from_json(json.loads(json.dumps(v.to_json()))) for v in verdicts_of(impl)]
    d = diagnosis.diagnose(impl, again)
    assert d.headline() == mutant_diagnosis("SigmoidDerivativeAtActivation").headline()
    assert json.loads(json.dumps(d.to_json()))["category"] == diagnosis.ACTIVATION


class QuarterSigmoid(NumpyMLP):
    """σ' taken as its value at 0, 1/4, everywhere: no shape says it, the conditions do."""
    name = "quarter-sigmoid"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        return h, (np.full_like(d, 0.25) if layer.activation == "sigmoid" else d)


class HingeWithoutMargin(NumpyMLP):
    """The hinge subgradient taken where t y < 0 instead of t y < 1."""
    name = "hinge-without-margin"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, (np.where(t * y < 0, -t, 0.0) if name == "hinge" else g)


class CostNotHalved(NumpyMLP):
    """The mse cost without its ½ (the gradient has it right)."""
    name = "cost-not-halved"

    def gradients(self, spec, params, X, Y):
        cost, grads = super().gradients(spec, params, X, Y)
        return (2 * cost if spec.loss == "mse" else cost), grads


def test_a_wrong_cost_is_not_a_wrong_gradient():
    d = diagnosis.diagnose(CostNotHalved(), verdicts_of(CostNotHalved()))
    assert d.category is None and d.shape == "the cost is wrong; every gradient is right", d.text()
    assert d.headline() == "cost-not-halved: the cost is wrong; every gradient is right"
    assert "every gradient right; the cost wrong" in d.text()
    # a module that is not installed is put on sys.path by its reproducer
    root = str(Path(__file__).resolve().parent)
    assert d.reproducer.startswith(f"import sys\nsys.path.insert(0, {root!r})\n")
    assert f"reproduce('{__name__}:CostNotHalved', 'vs_jax'" in d.reproducer


@pytest.mark.parametrize("wrong, category, which", [(QuarterSigmoid(), diagnosis.ACTIVATION, "sigmoid"),
                                                     (HingeWithoutMargin(), diagnosis.LOSS, "hinge")])
def test_without_a_shape_the_conditions_give_the_category(wrong, category, which):
    d = diagnosis.diagnose(wrong, verdicts_of(wrong))
    assert d.shape is None and (d.category, d.activation or d.loss) == (category, which), d.text()
    assert "no simple shape" in d.text() and d.headline() == f"{wrong.name}: {category} ({which})"


def test_a_run_is_diagnosed_per_source_through_the_isolation_worker():
    """As the report will: each --impl source loaded in its worker, diagnosed from the records."""
    sign = mutants.get("SignFlip")
    records = list(verdicts_of(builtin)) + list(verdicts_of(sign))
    found = diagnosis.diagnose_run(["builtin", "implementations.mutants:SignFlip"], records)
    assert [d.headline() for d in found] == [mutant_diagnosis("SignFlip").headline()]
    assert diagnosis.diagnose_run(["builtin"], list(verdicts_of(builtin))) == []


# --- correct implementations -----------------------------------------------------------------

def _assert_no_diagnosis(impl):
    vs = verdicts_of(impl, every_case=impl is builtin)
    assert any(v.status == "passed" for v in vs)
    assert not [v.summary() for v in vs if v.status in (FAILED, ERROR)]
    assert diagnosis.diagnose(impl, vs) is None
    # told that every passing case failed, the diagnosis reruns them and the directed cases
    # and finds nothing to explain: it never invents a bug
    told = [dataclasses.replace(v, status=FAILED) if v.status == "passed" else v for v in vs]
    assert diagnosis.diagnose(impl, told) is None


def test_the_builtin_gets_no_diagnosis():
    _assert_no_diagnosis(builtin)


@pytest.mark.parametrize("name", ZOO)
def test_correct_implementations_get_no_diagnosis(name):
    _assert_no_diagnosis(zoo_impl(name))


# --- the student example, from any folder ----------------------------------------------------

def test_the_student_example_is_diagnosed_and_its_reproducer_runs_elsewhere(tmp_path):
    impl = load(STUDENT)
    d = diagnosis.diagnose(impl, verdicts_of(impl), STUDENT)
    assert (d.category, d.activation) == (diagnosis.ACTIVATION, "sigmoid"), d.text()
    assert "z(1 − z)" in d.shape and "wrong on every network with a sigmoid layer" in d.text()
    script = tmp_path / "repro.py"
    script.write_text(d.reproducer)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("[failed] vs_jax student-mlp"), proc.stdout


def test_a_relative_file_source_becomes_absolute():
    assert diagnosis.portable_source(None, "examples/x.py:IMPL") == str(Path("examples/x.py").resolve()) + ":IMPL"
    assert diagnosis.portable_source(None, "mypkg.backprop:MLP") == "mypkg.backprop:MLP"
    assert diagnosis.portable_source(builtin) == "builtin"
    assert diagnosis.portable_source(mutants.get("SignFlip")) == "implementations.mutants:SignFlip"


# --- the pieces ------------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(case=cases(dtypes=("float64", "float32")))
def test_a_run_case_is_rebuilt_exactly_from_its_label(case):
    """The diagnosis reruns the run's cases from their labels: the same arrays Hypothesis drew."""
    rc = diagnosis.RunCase(case.spec, case.X.shape[0], case.label, case.describe())
    again = diagnosis.rebuild(rc)
    for a, b in zip([case.X, case.Y] + [x for pair in case.params for x in pair],
                    [again.X, again.Y] + [x for pair in again.params for x in pair]):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_errors_are_grouped_by_implementation_and_message():
    def err(impl, msg):
        return Verdict("vs_jax", ERROR, implementation=impl, message=msg, extra={"kind": "invalid"})
    vs = [err("a", "layer 1 W has shape (3, 4), expected (4, 3)"),
          err("a", "layer 1 W has shape (2, 5), expected (5, 2)"),
          err("a", "raised ZeroDivisionError"), err("b", "raised ZeroDivisionError"),
          Verdict("vs_jax", FAILED, implementation="a")]
    groups = [(g.implementation, g.count, g.message) for g in diagnosis.group_errors(vs)]
    assert groups == [("a", 2, "layer 1 W has shape (3, 4), expected (4, 3)"), ("a", 1, "raised ZeroDivisionError"),
                      ("b", 1, "raised ZeroDivisionError")]


def test_conditions_need_evidence_on_both_sides():
    from reference.spec import mlp
    sig, tanh = mlp(2, [3, 1], ["sigmoid", "identity"]), mlp(2, [3, 1], ["tanh", "identity"])
    conds = diagnosis.conditions([(sig, 4, True)] * 3 + [(tanh, 4, False)] * 3)
    assert conds[0].feature == "sigmoid layer" and conds[0].sufficient
    assert conds[0].words() == "wrong on every network with a sigmoid layer (3 cases), right on every other (3)"
    assert diagnosis.conditions([(sig, 4, True)] * 3 + [(tanh, 4, False)]) == []   # one passing case says little
