"""The main job's fixed set: the built-in implementation agrees with JAX to 1e-10 everywhere,
and a broken copy is reported by all three checks of the first version, naming the layer."""
import numpy as np
import pytest

from implementations.mutants import MissingActivationDerivative
from implementations.numpy_mlp import builtin
from properties.checks import Context, run_check
from properties.fixed_cases import fixed_cases
from reference import jax_ref
from reference.compare import relative_errors
from reference.spec import flatten

CASES = fixed_cases()
# Entries smaller than a millionth of the gradient's largest are compared at that floor: their
# own rounding noise is ~u times the scale of the terms that cancelled into them, not their size.
FLOOR_FRACTION = 1e-6


@pytest.mark.parametrize("case_id", [c for c, case in CASES.items() if case.spec.dtype == "float64"])
def test_builtin_agrees_with_jax_to_1e_10(case_id):
    case = CASES[case_id]
    cost, grads = builtin.gradients(case.spec, case.params, case.X, case.Y)
    ref = jax_ref.gradients(case.spec, case.params, case.X, case.Y)
    g = flatten(grads)
    floor = FLOOR_FRACTION * np.max(np.abs(ref.flat))
    rel = relative_errors(g, ref.flat, floor)
    if ref.on_kink:  # seed 004's XOR: only entries that do not depend on the kink's side
        rel = rel[ref.flat == ref.flat_other_side]
    assert rel.max() <= 1e-10, (case_id, rel.max())
    assert relative_errors([cost], [ref.cost])[0] <= 1e-10


@pytest.mark.parametrize("check", ["vs_jax", "vs_fd", "slide_fd"])
def test_a_broken_copy_fails_every_check_naming_the_layer(check):
    """Layer 1 forgets f'(z): every check must fail, and point at layer 1."""
    case = CASES["tanhxmse"]
    v = run_check(Context(MissingActivationDerivative(), case, "implementations.mutants:MissingActivationDerivative"),
                  check)
    assert v.status == "failed", v.summary()
    assert v.worst.layer == 1 and "layer 1" in v.summary()
    assert "MissingActivationDerivative" in v.reproducer
    assert run_check(Context(builtin, case), check).status == "passed"
