"""Every perceptron property fails on a mutant, every mutant is caught, the reference never is.

The properties run exactly as in properties/test_perceptron.py (same strategies, same checks,
the `ci` profile's examples), without the shrink phase: being caught is decided by the first
failing example, and shrinking a mutant's failure would only cost time."""
from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings

from implementations.numpy_mlp import NumpyMLP
from implementations.perceptron_mutants import MUTANTS
from properties import profiles
from properties.perceptron_checks import BOUND, INVARIANCE, NONSEPARABLE, PROPERTIES, TIGHT
from properties.perceptron_strategies import separable_data

profiles.register()
CI = settings(settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])

# mutant -> the properties that must catch it (each property appears at least once)
CAUGHT_BY = {
    "SkipsEveryOtherUpdate": [TIGHT],
    "StrictMistakeTest": [BOUND, TIGHT, NONSEPARABLE],
    "BiasNeverUpdated": [BOUND],
    "AbsoluteThreshold": [INVARIANCE],
}


def first_failure(impl, name, strategy=None, examples=None):
    """The first failing verdict of property `name` on `impl` under the ci profile, or None."""
    default, check = PROPERTIES[name]
    failures = []

    @settings(CI, max_examples=examples or CI.max_examples)
    @given(case=default() if strategy is None else strategy)
    def prop(case):
        v = check(impl, case)
        if not v.ok:
            failures.append(v)
        assert v.ok, v.explain()
    try:
        prop()
    except AssertionError:
        assert failures, "the property raised without a failing verdict"
    return failures[0] if failures else None


def test_every_mutant_and_every_property_is_covered():
    assert set(CAUGHT_BY) == set(MUTANTS)
    assert {p for ps in CAUGHT_BY.values() for p in ps} == set(PROPERTIES)


@pytest.mark.parametrize("mutant, prop", [(m, p) for m, ps in CAUGHT_BY.items() for p in ps])
def test_mutant_is_caught(mutant, prop):
    v = first_failure(MUTANTS[mutant](), prop)
    assert v is not None, f"{mutant} ({MUTANTS[mutant].bug}) passed every {prop} example"
    assert v.status == "failed" and v.check == prop


def test_bias_mutant_is_caught_on_augmented_data():
    """Caught for the reason it models: data that need a bias, the last column the constant.
    Only data that no separator through the origin handles expose it, and planted-margin data
    often have one, so this search looks further than the ci profile's examples."""
    v = first_failure(MUTANTS["BiasNeverUpdated"](), BOUND, separable_data(bias=True), examples=400)
    assert v is not None and v.status == "failed" and "+bias" in v.case


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_reference_is_never_caught(prop):
    v = first_failure(NumpyMLP(), prop)
    assert v is None, v.explain()
