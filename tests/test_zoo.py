"""The zoo (tests/zoo/): correct implementations written independently of backcheck, each in an
idiom people really use. backcheck must never flag one of them, so every gradient check runs
on raw random cases inside each declaration (large scales, exact zeros, l2 > 0: nothing
filtered), through the user path (the file loaded by name, in a worker process), and any
failed, error or reference_mismatch verdict is a false alarm of backcheck's.

The exception is a known true positive (zoo.TRUE_POSITIVES), tested as one: scikit-learn's
MLPClassifier clips the probabilities inside its reported log loss, so its cost is not the bce /
softmax_ce cost beyond |logit| ~ 36 (its gradients are), and vs_jax is right to fail its cost.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from implementations.registry import load
from properties.checks import GRADIENT_CHECKS, Case, run_checks
from properties.strategies import cases_for
from reference.spec import Layer, NetworkSpec
from reference.verdict import ERROR, FAILED, REFERENCE_MISMATCH

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "zoo"
sys.path.insert(0, str(ZOO.parent))
from zoo import MEMBERS, true_positive  # noqa: E402

FALSE_ALARMS = (FAILED, ERROR, REFERENCE_MISMATCH)
EXAMPLES = {"scalar_engine.py:IMPL": 8}  # pure Python: slow
DEFAULT_EXAMPLES = 20


def source(member: str) -> str:
    return f"{ZOO / member.split(':')[0]}:{member.split(':')[1]}"


@pytest.fixture
def isolated():
    opened = []

    def open_(src):
        impl = load(src, isolate=True)
        opened.append(impl)
        return impl
    yield open_
    for impl in opened:
        impl.close()


def false_alarms(member: str, impl, src: str, n: int) -> list:
    """Every false alarm on n raw cases drawn inside the declaration (no shrinking: the
    whole list, not one minimal example, is what tells a category of false alarms)."""
    bad = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases_for(impl.capabilities))
    def run(case):
        bad.extend(v for v in run_checks(impl, case, GRADIENT_CHECKS, impl_ref=src)
                   if v.status in FALSE_ALARMS and not true_positive(member, v))
    run()
    return bad


@pytest.mark.parametrize("member", list(MEMBERS))
def test_zoo_member_raises_no_false_alarm(member, isolated):
    if MEMBERS[member]:
        pytest.importorskip(MEMBERS[member])
    src = source(member)
    impl = isolated(src)
    bad = false_alarms(member, impl, src, EXAMPLES.get(member, DEFAULT_EXAMPLES))
    assert not bad, f"{len(bad)} false alarm(s) on {impl.name}:\n\n" + "\n\n".join(
        v.explain() for v in bad)


def _dense(*layers):
    """[(W, b)] from nested lists."""
    return [(np.array(W, float), np.array(b, float)) for W, b in layers]


# The smallest cases found of each false alarm the zoo raised (benchmarks/bench_zoo.py finds
# them on raw random cases): member, why, spec, params, X, Y. Each must pass every check.
REPRODUCERS = [
    pytest.param("jax_user.py:IMPL", "XLA's tanh is off by several ulp near +-1, so jnp.tanh' = (1 + t)(1 - t) "
                 "by ~10 u", NetworkSpec(1, (Layer(1, "tanh"), Layer(1, "identity")), "mse"),
                 _dense(([[11.7950307293344]], [0.0]), ([[1.0]], [0.0])), [[1.0]], [[0.0]], id="xla-tanh-float64"),
    pytest.param("jax_user.py:IMPL", "the same in float32 (XLA's float32 tanh: ~4 ulp)",
                 NetworkSpec(1, (Layer(1, "tanh"), Layer(1, "identity")), "mse", dtype="float32"),
                 _dense(([[7.096117973327637]], [0.0]), ([[1.0]], [0.0])), [[1.0]], [[0.0]], id="xla-tanh-float32"),
    pytest.param("textbook_numpy.py:IMPL", "Richardson's step at a zero weight whose input is 1200: its "
                 "|R - D(h/2)| estimate is no bound where the step moves the tanh unit by ~1",
                 NetworkSpec(1, (Layer(1, "identity"), Layer(2, "tanh")), "softmax_ce"),
                 _dense(([[8.0]], [0.0]), ([[0.0], [0.0]], [-0.85, 0.3])), [[150.0]], [[1.0, 0.0]],
                 id="richardson-step-at-scale"),
    pytest.param("float32_numpy.py:IMPL", "a perceptron margin of 1e-6 is inside the loss's kink zone, and the "
                 "reference's cost there is 0, not 1e-6", NetworkSpec(1, (Layer(1, "identity"),), "perceptron",
                                                                       dtype="float32"),
                 _dense(([[1.0]], [0.0])), [[1e-6]], [[-1.0]], id="perceptron-zone-cost-float32"),
    pytest.param("jax_user.py:IMPL", "the same in float64 at a margin of 2e-15",
                 NetworkSpec(1, (Layer(1, "identity"),), "perceptron"), _dense(([[1.0]], [0.0])), [[2e-15]],
                 [[-1.0]], id="perceptron-zone-cost-float64"),
]


@pytest.mark.parametrize("member, why, spec, params, X, Y", REPRODUCERS)
def test_zoo_false_alarm_reproducer(member, why, spec, params, X, Y, isolated):
    if MEMBERS[member]:
        pytest.importorskip(MEMBERS[member])
    src = source(member)
    case = Case.make(spec, params, np.array(X), np.array(Y), label=why)
    bad = [v for v in run_checks(isolated(src), case, GRADIENT_CHECKS, impl_ref=src) if v.status in FALSE_ALARMS]
    assert not bad, f"{why}:\n\n" + "\n\n".join(v.explain() for v in bad)


def test_sklearn_classifier_clipped_log_loss_is_caught(isolated):
    """True positive: one logit of 50 (p clipped to 1 - eps) makes scikit-learn's reported bce
    ~36.04 where the exact loss of a wrong label is 50; the gradients (p - y) are right."""
    pytest.importorskip("sklearn")
    src = source("sklearn_mlp.py:CLASSIFIER")
    spec = NetworkSpec(1, (Layer(1, "relu"), Layer(1, "identity")), "bce")
    params = [(np.array([[1.0]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.0]))]
    case = Case.make(spec, params, np.array([[50.0]]), np.array([[0.0]]), label="logit 50, label 0")
    vs_jax, vs_fd = run_checks(isolated(src), case, ("vs_jax", "vs_fd"), impl_ref=src)
    assert true_positive("sklearn_mlp.py:CLASSIFIER", vs_jax), vs_jax.explain()
    assert vs_jax.worst_values[0] == pytest.approx(-np.log(np.finfo(float).eps), rel=1e-6)
    assert vs_fd.status not in FALSE_ALARMS, vs_fd.explain()


def test_cli_checks_a_zoo_member(tmp_path):
    """The command a user runs, on one zoo member, narrowed to the vs_jax properties."""
    member = "textbook_numpy.py:IMPL"
    proc = subprocess.run([sys.executable, "-m", "backcheck.cli", "check", "--impl", f"tests/zoo/{member}",
                           "-k", "vs_jax", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    verdicts = json.loads((tmp_path / "results.json").read_text())["verdicts"]
    ours = [v for v in verdicts if v.get("implementation") == "zoo-textbook-numpy"]
    assert any(v["check"] == "vs_jax" and v["status"] == "passed" for v in ours), verdicts[:3]
