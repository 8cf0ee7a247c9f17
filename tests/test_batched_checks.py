"""checks.run_many: the draws of one property example share their reference evaluations (one
directional call for all their directions) and get the verdicts each gets alone; a failure is
remade alone, so that it is exactly what its reproducer prints."""
from __future__ import annotations

import numpy as np
import pytest

from implementations import mutants
from implementations.numpy_mlp import builtin
from properties import checks
from properties.checks import Case, Context, run_check, run_many
from reference import jax_ref
from reference.spec import Layer, NetworkSpec, init_params, random_batch

SPECS = [NetworkSpec(3, (Layer(4, "tanh"), Layer(2, "identity")), "mse", 0.1),
         NetworkSpec(2, (Layer(3, "relu"), Layer(4, "sigmoid"), Layer(3, "identity")), "softmax_ce"),
         NetworkSpec(5, (Layer(12, "tanh"), Layer(3, "identity")), "mse")]   # not the tiny bucket


def _draws(spec, n=6, k=4):
    rng = np.random.default_rng(7)
    return [Case.make(spec, init_params(spec, rng), *random_batch(spec, rng, n), direction_seed=s)
            for s in range(k)]


def _counting(monkeypatch):
    """Sizes of the direction_costs_many calls made (a lone direction_costs is one of size 1)."""
    sizes = []
    real = jax_ref.direction_costs_many

    def counted(requests):
        sizes.append(len(requests))
        return real(requests)
    monkeypatch.setattr(jax_ref, "direction_costs_many", counted)
    return sizes


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_draws_sharing_a_call_get_the_verdicts_they_get_alone(spec, monkeypatch):
    cases = _draws(spec)
    alone = [run_check(Context(builtin, c, "builtin"), "directional") for c in cases]
    sizes = _counting(monkeypatch)
    together = run_many([Context(builtin, c, "builtin") for c in cases], "directional")
    assert sizes == [len(cases)]     # one call for all their directions, none alone
    for a, t in zip(alone, together):
        assert t.ok and a.status == t.status, (a.summary(), t.summary())
        assert (a.n_entries, a.n_kinks) == (t.n_entries, t.n_kinks)
        assert a.worst_values == t.worst_values and a.max_error == t.max_error   # bit for bit


def test_a_check_that_asks_for_no_shared_evaluation_runs_once(monkeypatch):
    cases = _draws(SPECS[0])
    sizes = _counting(monkeypatch)
    out = run_many([Context(builtin, c, "builtin") for c in cases], "vs_jax")
    assert sizes == [] and [v.check for v in out] == ["vs_jax"] * len(cases) and all(v.ok for v in out)


def test_a_failure_among_shared_draws_is_the_one_its_reproducer_prints(monkeypatch):
    """SignFlip fails the directional check on every draw: each failure is made again alone
    (a fresh context, its own call), so its numbers and reproducer are the lone run's."""
    cases = _draws(SPECS[0])
    flip = mutants.get("SignFlip")
    alone = [run_check(Context(flip, c, None), "directional") for c in cases]
    sizes = _counting(monkeypatch)
    together = run_many([Context(flip, c, None) for c in cases], "directional")
    assert sizes[0] == len(cases) and sizes[1:] == [1] * len(cases)   # the shared call, then each alone
    for a, t in zip(alone, together):
        assert t.status == a.status == "failed"
        assert t.summary() == a.summary() and t.reproducer == a.reproducer
        assert t.worst == a.worst


def test_every_shared_kind_names_a_reference_function():
    assert all(callable(getattr(jax_ref, name)) for name in checks.SHARED_CALLS.values())
