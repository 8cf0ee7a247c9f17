"""The strategies shrink to small, readable counterexamples: fewest layers, smallest widths,
the simplest activation, mse, float64, no regularizer, unit scale without zeros."""
from hypothesis import HealthCheck, find, settings

from properties.strategies import cases, layers, specs
from reference.spec import Layer

FIND = settings(database=None, max_examples=2000, suppress_health_check=list(HealthCheck))


def test_a_deep_network_shrinks_to_the_simplest_one_that_deep():
    case = find(cases(), lambda c: c.spec.depth >= 3, settings=FIND)
    spec = case.spec
    assert spec.layers == (Layer(1, "identity"),) * 3
    assert (spec.n_in, spec.loss, spec.l2, spec.dtype) == (1, "mse", 0.0, "float64")
    assert case.X.shape == (1, 1) and "scale=unit" in case.label and "zeros" not in case.label


def test_an_activation_shrinks_to_its_default_parameter_and_one_unit():
    spec = find(specs(), lambda s: any(l.activation == "elu" for l in s.layers), settings=FIND)
    elu = [l for l in spec.layers if l.activation == "elu"]
    assert elu == [Layer(1, "elu")] and spec.depth == 2


def test_maxout_shrinks_to_two_pieces():
    layer = find(layers(), lambda l: l.activation == "maxout", settings=FIND)
    assert layer == Layer(1, "maxout", pieces=2)


def test_softmax_keeps_at_least_two_classes():
    spec = find(specs(losses=["softmax_ce"]), lambda s: True, settings=FIND)
    assert spec.n_out == 2
