"""The property suite: Hypothesis draws networks, parameters and batches inside what the
implementation declares, and each property compares it with a reference under the error model.

A failure prints the worst entry (layer, W or b, index), both values, the error and the bound,
and a reproducer: a few lines of Python that rebuild the case and rerun the check.

Budget. Each property has the same number of Hypothesis examples per implementation, split
evenly over the losses it declares (`examples_per_loss`): an implementation declaring one loss
gets all of them on that loss, as many as the built-in gets over its seven. Each example is one
architecture and batch size carrying `DRAWS[check]` parameter sets and batches (a list of
cases, strategies.batches_for), whose reference gradients come from one vectorized call
(jax_ref.gradients_many) and whose error models from one pass (errormodel.model_many):
Hypothesis still explores and shrinks the architectures, and its per-example cost is paid once
per list. The directional property's draws also share their evaluations along their directions
(one jax_ref.direction_costs_many call for all, checks.run_many). The finite-difference
properties take one case per example: their time goes into the perturbed evaluations (~10 µs
each in the tiny bucket, 4 per parameter), which batching does not share.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis.control import current_build_context

from properties.checks import SHARING_CHECKS, Context, models_of, run_check, run_many
from properties.strategies import batches_for, cases, skip_undeclared, undeclared
from reference import jax_ref
from reference.spec import LOSSES

# One test per property and loss: smaller tests that xdist can spread over its workers and
# failures that say which loss. Slowest first (the finite-difference ones): xdist hands out
# tests in file order, so the short ones are left to fill the end of the run instead of one
# long test running alone.
per_loss = pytest.mark.parametrize("loss", list(LOSSES))
# 8 cases an example where the reference is one vectorized call: the example's own cost
# (Hypothesis's, ~1.2 ms here) is then ~0.15 ms a case (benchmarks/bench_properties.py). Not
# more: every case is a call of the implementation, and a slow one (tests/zoo/scalar_engine.py,
# a scalar autodiff engine) took 80 s for `backcheck check` at 4, 160 s at 16 for vs_jax.
DRAWS = {"slide_fd": 1, "richardson": 1, "vs_fd": 1, "vs_jax": 8, "directional": 4, "intermediates": 8}


def examples_per_property() -> int:
    """A property's examples per implementation: a quarter of the profile's max_examples per
    loss, at least 10, times the seven losses (70 in the ci profile)."""
    return max(10, settings().max_examples // 4) * len(LOSSES)


def examples_per_loss(caps) -> int:
    """The property's examples split evenly over the losses `caps` declares."""
    declared = sum(undeclared(caps, loss) is None for loss in LOSSES)
    return math.ceil(examples_per_property() / max(declared, 1))


def _check(impl, impl_spec, record, check, loss, needs=None):
    """One property on one loss. Outside the declaration (this loss, or `needs`: an optional
    method) the test is skipped before anything is drawn."""
    caps = impl.capabilities
    skip_undeclared(impl, record, check, (needs and caps.supports(needs)) or undeclared(caps, loss))

    @settings(max_examples=examples_per_loss(caps))
    @given(cases=batches_for(caps, loss, draws=DRAWS[check]))
    def prop(cases):
        final = current_build_context().is_final
        for v in verdicts(impl, cases, impl_spec, check):
            if v.ok or final:  # shrinking's intermediate failures are not results
                record(v)
            assert v.ok, v.explain()
    # each (property, loss) its own examples (derandomized: its own fixed ones) and database key
    prop.hypothesis.inner_test._hypothesis_internal_add_digest = f"{check}:{loss}".encode()
    prop()


def verdicts(impl, cases, impl_spec, check):
    """The check's verdict on each of the draws of one example: for a check whose reference
    evaluations the draws share (checks.SHARING_CHECKS: one call for all their directions),
    through checks.run_many; for the others each as its context is made."""
    ctxs = _contexts(impl, cases, impl_spec)
    if check in SHARING_CHECKS:
        yield from run_many(list(ctxs), check)
    else:
        yield from (run_check(ctx, check) for ctx in ctxs)


def _contexts(impl, cases, impl_spec):
    """A Context per case, made as each is checked (each starts its implementation call), with
    the reference gradients of all the cases computed first, in one vectorized call, and their
    error models in one pass (checks.models_of: each the one the case gets alone)."""
    packs = [jax_ref.pack(c.spec, c.params, c.X, c.Y) for c in cases]
    refs = jax_ref.gradients_many(packs)
    for case, packed, ref, models in zip(cases, packs, refs, models_of(cases)):
        ctx = Context(impl, case, impl_spec)
        # what Context would compute on first use, already here
        ctx.packed, ctx.ref, ctx.models = packed, ref, models
        yield ctx


@given(case=cases(dtypes=("float64", "float32")))
def test_references_agree(record, case):
    """JAX against finite differences, no implementation involved: if this fails the harness
    is wrong, and it is reported as reference_mismatch, not as an implementation's failure."""
    v = run_check(Context(None, case, "builtin"), "reference_agreement")
    if v.ok or current_build_context().is_final:
        record(v)
    assert v.ok, v.explain()


@per_loss
def test_weights_vs_slide_checker(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "slide_fd", loss)


@per_loss
def test_gradients_vs_richardson(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "richardson", loss)


@per_loss
def test_gradients_vs_central_differences(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "vs_fd", loss)


@per_loss
def test_cost_and_gradients_vs_jax(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "vs_jax", loss)


@per_loss
def test_directional_derivative(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "directional", loss)


@per_loss
def test_layer_deltas_vs_jax(impl, impl_spec, record, loss):
    _check(impl, impl_spec, record, "intermediates", loss, needs="intermediates")
