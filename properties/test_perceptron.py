"""Perceptron properties (seed 003, issue 5), for every implementation that declares a
perceptron: convergence within Novikoff's bound on separable data with a planted margin, the
tight e_i family (k = d exactly), scaling and sign-flip invariance, and non-convergence within
the budget on non-separable data (seed 004's XOR). See properties/perceptron_checks.py."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis.control import current_build_context

from properties.perceptron_checks import (BOUND, INVARIANCE, NONSEPARABLE, PROPERTIES, TIGHT,
                                          check_nonseparable, perceptron_undeclared)
from properties.perceptron_strategies import xor_case
from properties.strategies import skip_undeclared


def _property(impl, impl_spec, record, name):
    skip_undeclared(impl, record, name, perceptron_undeclared(impl))
    strategy, check = PROPERTIES[name]

    @given(case=strategy())
    def prop(case):
        v = check(impl, case, impl_spec)
        if v.ok or current_build_context().is_final:  # shrinking's intermediate failures are not results
            record(v)
        assert v.ok, v.explain()
    prop()


@pytest.mark.parametrize("name", [BOUND, TIGHT, INVARIANCE, NONSEPARABLE])
def test_perceptron_property(impl, impl_spec, record, name):
    _property(impl, impl_spec, record, name)


def test_perceptron_xor_does_not_converge(impl, impl_spec, record):
    """Seed 004's XOR exactly: reported as not converging within the budget."""
    skip_undeclared(impl, record, NONSEPARABLE, perceptron_undeclared(impl))
    v = record(check_nonseparable(impl, xor_case(), impl_spec))
    assert v.ok, v.explain()
