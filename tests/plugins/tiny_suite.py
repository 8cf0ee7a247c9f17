"""A tiny suite in the harness's shape, run in a subprocess by tests/test_isolation.py and
tests/test_registry.py: it shows that every way of naming an implementation works through the
`impl` fixture, and that a run over several implementations, some bad, completes and records
an error verdict for each bad one. Not collected by default (not named test_*.py)."""
import numpy as np

from implementations.errors import PluginError
from implementations.numpy_mlp import builtin
from reference.spec import flatten, init_params, mlp, random_batch
from reference.verdict import FAILED, PASSED, Verdict

SPEC = mlp(3, [4, 2], ["tanh", "identity"], l2=0.1)
TRIGGER_N = 13  # the batch size on which tests/plugins/bad_{hang,exit,segfault}.py misbehave


def _cases(sizes):
    rng = np.random.default_rng(0)
    params = init_params(SPEC, rng)
    return [(SPEC, params, *random_batch(SPEC, rng, n)) for n in sizes]


def test_batched(impl, record):
    """Batched: each case gets a verdict, an error one where the implementation failed."""
    problems = []
    for case, out in zip(cases := _cases([5, TRIGGER_N, 6]), impl.gradients_many(cases)):
        if isinstance(out, PluginError):
            problems.append(record(out.verdict(check="vs_builtin", spec=SPEC)).message)
            continue
        ref = flatten(builtin.gradients(*case)[1])  # not JAX: this suite is about plumbing, and fast
        err = float(np.max(np.abs(flatten(out[1]) - ref)) / np.max(np.abs(ref)))
        v = record(Verdict("vs_builtin", PASSED if err < 1e-10 else FAILED, implementation=impl.name,
                           spec=SPEC.to_dict(), case=SPEC.describe(), max_error=err, bound=1e-10))
        if not v.ok:
            problems.append(v.summary())
    assert not problems, "; ".join(problems)


def test_single_call(impl, record):
    """One call that raises PluginError: the plugin hook records the error verdict."""
    cost, _ = impl.gradients(*_cases([7])[0])
    record(Verdict("cost", PASSED, implementation=impl.name, case=SPEC.describe()))
    assert np.isfinite(cost)
