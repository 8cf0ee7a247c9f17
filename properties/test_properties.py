"""The property suite: Hypothesis draws networks, parameters and batches inside what the
implementation declares, and each property compares it with a reference under the error model.

A failure prints the worst entry (layer, W or b, index), both values, the error and the bound,
and a reproducer: a few lines of Python that rebuild the case and rerun the check."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.control import current_build_context

from properties.checks import Context, run_check
from properties.strategies import cases, cases_for, skip_undeclared, undeclared
from reference.spec import LOSSES

# One test per property and loss: smaller tests that xdist can spread over its workers and
# failures that say which loss; each gets a quarter of the profile's examples (7 losses: 1.75x).
# Slowest first (the finite-difference ones): xdist hands out tests in file order, so the short
# ones are left to fill the end of the run instead of one long test running alone.
EXAMPLES = max(10, settings().max_examples // 4)
per_loss = pytest.mark.parametrize("loss", list(LOSSES))


def _check(impl, impl_spec, record, data, check, loss, needs=None):
    """One example of a property. Outside the declaration (this loss, or `needs`: an optional
    method) the test is skipped on its first example, before anything is drawn."""
    caps = impl.capabilities
    skip_undeclared(impl, record, check, (needs and caps.supports(needs)) or undeclared(caps, loss))
    case = data.draw(cases_for(caps, loss), label="case")
    v = run_check(Context(impl, case, impl_spec), check)
    final = current_build_context().is_final
    if v.ok or final:  # shrinking's intermediate failures are not results
        record(v)
    assert v.ok, v.explain()


@given(case=cases(dtypes=("float64", "float32")))
def test_references_agree(record, case):
    """JAX against finite differences, no implementation involved: if this fails the harness
    is wrong, and it is reported as reference_mismatch, not as an implementation's failure."""
    v = run_check(Context(None, case, "builtin"), "reference_agreement")
    if v.ok or current_build_context().is_final:
        record(v)
    assert v.ok, v.explain()


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_weights_vs_slide_checker(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "slide_fd", loss)


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_gradients_vs_richardson(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "richardson", loss)


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_gradients_vs_central_differences(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "vs_fd", loss)


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_cost_and_gradients_vs_jax(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "vs_jax", loss)


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_directional_derivative(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "directional", loss)


@per_loss
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_layer_deltas_vs_jax(impl, impl_spec, record, data, loss):
    _check(impl, impl_spec, record, data, "intermediates", loss, needs="intermediates")
