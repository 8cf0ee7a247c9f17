"""Two identical calls: reassociation is not an error, non-determinism is, and it is named so.

A repeated call whose result is not bitwise equal is compared under the error model: within
twice its per-entry bound (two roundings of one computation) the first result is kept; beyond
it the plug-in gets a NONDETERMINISTIC error. Determinism is sampled (every DETERMINISM_EVERY-th
call), so a result that looks wrong is rechecked (`recheck_gradients`) before it is blamed as a
wrong gradient. Plug-ins: tests/plugins/nondeterministic_*.py. Every case runs in-process and
isolated; isolated, the second call is made by the worker and compared in the harness.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from implementations import errors as E
from implementations.errors import PluginError
from implementations.numpy_mlp import builtin
from implementations.registry import load
from implementations.validate import DETERMINISM_EVERY, REPEATS, disagreement
from properties import errormodel
from reference.spec import Layer, NetworkSpec, flatten, init_params, mlp, random_batch

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "tests/plugins"
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="isolated")]
ND = (r"non-deterministic implementation: two identical calls returned different (cost|layer \d (W|b)) "
      r"\(max difference [-+.e\d]+, over the reassociation bound [-+.e\d]+\)$")

SPECS = [
    mlp(3, [4, 2], ["tanh", "identity"], l2=0.1),
    mlp(5, [8, 6, 3], ["relu", "softplus", "identity"], loss="softmax_ce"),
    mlp(4, [6, 1], ["sigmoid", "identity"], loss="logistic", l2=0.01),
    NetworkSpec(3, (Layer(4, "maxout", pieces=3), Layer(2, "elu")), "mse"),
    mlp(6, [12, 5], ["tanh", "sigmoid"], loss="bce", dtype="float32"),
]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # plug-in sources are relative paths, as users type them


def _cases(count: int, specs=SPECS, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        spec = specs[i % len(specs)]
        out.append((spec, init_params(spec, rng), *random_batch(spec, rng, int(rng.integers(2, 21)))))
    return out


@contextmanager
def _loaded(source, isolate):
    impl = load(f"{PLUGINS}/{source}", isolate=isolate)
    try:
        yield impl
    finally:
        getattr(impl, "close", lambda: None)()


def _assert_nondeterministic(err, name):
    assert isinstance(err, PluginError), err
    assert (err.kind, err.implementation, err.call) == (E.NONDETERMINISTIC, name, "gradients"), err
    assert re.search(ND, err.problem) and err.problem.startswith("non-deterministic implementation: "), err.problem
    assert "\n" not in str(err)
    assert err.verdict("vs_jax").status == "error"


# --- the comparison ------------------------------------------------------------------------

def _perturbed(case, index, by):
    """The built-in's result on `case` with flat gradient entry `index` moved by `by`."""
    cost, grads = builtin.gradients(*case)
    g = flatten(grads)
    g[index] += by
    return cost, g


def test_the_threshold_is_twice_the_error_models_bound():
    """Just inside 2 tol: reassociation (None); just beyond: named, with the entry's field, its
    difference and its bound. The bound is the error model's own, not a looser one."""
    case = _cases(1)[0]
    tol = errormodel.gradient_tolerance(*case, case[0].dtype)[0]
    first = builtin.gradients(*case)
    i = 12 + 4 + 1  # layer 2 W[0,1] of 3 -> 4 -> 2: after W1 (4x3) and b1 (4)
    assert disagreement("gradients", case, first, _perturbed(case, i, 0.9 * REPEATS * tol[i])) is None
    again = _perturbed(case, i, 1.1 * REPEATS * tol[i])
    diff = abs(again[1][i] - flatten(first[1])[i])
    assert diff > REPEATS * tol[i]
    problem = disagreement("gradients", case, first, again)
    assert problem == (f"non-deterministic implementation: two identical calls returned different layer 2 W "
                       f"(max difference {diff:.3g}, over the reassociation bound {REPEATS * tol[i]:.3g})")
    assert disagreement("gradients", case, first, _perturbed(case, i, 0.0)) is None  # pairs vs flat: same values


def test_a_different_cost_is_named():
    case = _cases(1)[0]
    cost, grads = builtin.gradients(*case)
    assert disagreement("gradients", case, (cost, grads), (cost * (1 + 1e-15), grads)) is None  # rounding-sized
    problem = disagreement("gradients", case, (cost, grads), (cost * (1 + 1e-6), grads))
    assert problem.startswith("non-deterministic implementation: two identical calls returned different cost "
                              "(max difference "), problem


def test_the_worst_entry_relative_to_its_bound_is_named():
    """Two fields over their bounds: the one further over (in bounds, not in absolute size) is named."""
    case = _cases(1)[0]
    tol = errormodel.gradient_tolerance(*case, "float64")[0]
    cost, g = _perturbed(case, 0, 10 * REPEATS * tol[0])   # layer 1 W[0,0]: 10x over
    last = g.size - 1                                       # layer 2 b[1]: 1000x over
    g[last] += 1000 * REPEATS * tol[last]
    problem = disagreement("gradients", case, builtin.gradients(*case), (cost, g))
    assert "different layer 2 b " in problem, problem


# --- plug-ins ------------------------------------------------------------------------------

@pytest.mark.parametrize("isolate", MODES)
def test_noise_on_every_call_is_nondeterministic_never_a_wrong_gradient(isolate):
    """Noise 1e-3 on every call: the sampled calls are errors at once; every other result, which
    looks like a wrong gradient, is named non-deterministic when rechecked."""
    with _loaded("nondeterministic_noise.py:IMPL", isolate) as impl:
        cases = _cases(DETERMINISM_EVERY + 2)
        for n, (case, out) in enumerate(zip(cases, impl.gradients_many(cases))):
            if n % DETERMINISM_EVERY == 0:
                _assert_nondeterministic(out, "nondeterministic-noise")
            else:
                assert not isinstance(out, PluginError), out
                _assert_nondeterministic(impl.recheck_gradients(*case, out), "nondeterministic-noise")


@pytest.mark.parametrize("isolate", MODES)
def test_sums_in_another_order_on_each_call_are_never_an_error(isolate):
    """A correct backprop summing in a random order on every call (products, batch sums, cost,
    forward and backward, float32 too): repeated calls differ bitwise, never beyond the bound."""
    with _loaded("nondeterministic_order.py:IMPL", isolate) as impl:
        cases = _cases(3 * DETERMINISM_EVERY)
        outs = impl.gradients_many(cases)
        assert not [o for o in outs if isinstance(o, PluginError)]
        differed = 0
        for case, out in zip(cases, outs):
            again = impl.gradients(*case)
            differed += not np.array_equal(flatten(again[1]), flatten(out[1]))
            assert impl.recheck_gradients(*case, out) is None
            assert impl.recheck_gradients(*case, (out[0], flatten(out[1]))) is None  # flat, as the checks hold it
        assert differed >= len(cases) // 2, "the plug-in must really reassociate, or this shows nothing"
        forward_differed = 0
        for case in cases[:DETERMINISM_EVERY + 1]:  # the first call is repeated: intermediates' bounds too
            a, b = impl.intermediates(*case), impl.intermediates(*case)
            forward_differed += any(not np.array_equal(x, y) for x, y in zip(a.pre_activations, b.pre_activations))
        assert forward_differed


@pytest.mark.parametrize("isolate", MODES)
def test_state_kept_between_calls(isolate):
    """Gradients accumulated into buffers never zeroed: right on the first call only. The first
    call's repeat shows it; a later, unsampled call is named non-deterministic when rechecked."""
    with _loaded("nondeterministic_state.py:ACCUMULATES", isolate) as impl:
        case, other = _cases(2)
        with pytest.raises(PluginError) as info:
            impl.gradients(*case)
        _assert_nondeterministic(info.value, "accumulates")
        out = impl.gradients(*other)  # an unsampled call: its (wrong) result comes back
        _assert_nondeterministic(impl.recheck_gradients(*other, out), "accumulates")


@pytest.mark.parametrize("isolate", MODES)
def test_a_stale_cache_is_a_wrong_gradient_not_nondeterminism(isolate):
    """The same (wrong) answer to identical calls: the recheck finds nothing to name."""
    with _loaded("nondeterministic_state.py:STALE", isolate) as impl:
        first, second = _cases(2, specs=SPECS[:1])
        impl.gradients(*first)
        out = impl.gradients(*second)
        assert not np.allclose(flatten(out[1]), flatten(builtin.gradients(*second)[1]))  # wrong ...
        assert impl.recheck_gradients(*second, out) is None                              # ... but reproducibly


@pytest.mark.parametrize("isolate", MODES)
def test_an_error_of_the_second_call_is_returned_as_it_is(isolate):
    with _loaded("bad_raises.py:IMPL", isolate) as impl:
        case = _cases(1)[0]
        err = impl.recheck_gradients(*case, builtin.gradients(*case))
        assert isinstance(err, PluginError) and err.kind == E.RAISED, err
        assert "raised ZeroDivisionError" in str(err)
