"""Capabilities: what a declaration means (activations with parameters, hidden vs output,
uniform hidden layers, presets), the one gate supports(), the compact unchecked() list, and
that every generator draws only inside the declaration — and still draws something."""
from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from implementations.numpy_mlp import builtin
from implementations.protocol import ANY, Capabilities
from properties import training_checks as tc
from properties.fixed_cases import fixed_cases
from properties.strategies import _ALPHAS, _layer_kinds, cases_for, declared_kinds, undeclared
from properties.test_training import NETWORKS, network_cases, svm_cases
from reference.spec import ACTIVATIONS, LOSSES, Layer, NetworkSpec

DRAW = settings(max_examples=120, database=None, derandomize=True, suppress_health_check=list(HealthCheck))

DECLARATIONS = {
    "everything": Capabilities.everything(),
    "fixed slope": Capabilities(activations={"identity": None, "tanh": None, "leaky_relu": 0.01,
                                             "elu": (0.5, 1.0)}, losses={"mse", "hinge"}),
    "sklearn style": Capabilities.sklearn_style(),
    "uniform sigmoid": Capabilities.uniform("sigmoid"),
    "one loss": Capabilities(activations={"tanh", "identity"}, losses={"mse"}, dtypes={"float64"}),
    "float32 only": Capabilities(activations={"relu", "identity"}, dtypes={"float32"}),
    "no regularizer": Capabilities(activations={"softplus", "identity"}, regularizer=False),
    "maxout": Capabilities(activations={"maxout", "identity"}, losses={"softmax_ce"}),
    "no hidden layers": Capabilities(activations={"identity"}, hidden_activations=set(), losses={"logistic"}),
    "leaky everywhere": Capabilities.uniform({"leaky_relu": (0.01, 0.2)}, output={"identity", "tanh"},
                                             losses={"l1", "bce"}),
}


def spec(*layers, loss="mse", l2=0.0, dtype="float64", n_in=2) -> NetworkSpec:
    return NetworkSpec(n_in, tuple(layers), loss, l2, dtype)


def drawn_specs(strategy) -> list:
    got = []

    @DRAW
    @given(case=strategy)
    def collect(case):
        got.append(case.spec)
    collect()
    return got


# --- the declaration ---------------------------------------------------------------------------

def test_a_set_declares_each_activation_at_its_default_parameter_only():
    caps = Capabilities(activations={"tanh", "leaky_relu", "elu"})
    assert caps.activations == {"tanh", "leaky_relu", "elu"}
    assert caps.params("leaky_relu") == {0.1} and caps.params("elu") == {1.0} and caps.params("tanh") == frozenset()
    assert caps.supports(spec(Layer(3, "leaky_relu"), Layer(1, "elu"))) is None
    assert caps.supports(spec(Layer(3, "leaky_relu", alpha=0.3), Layer(1, "tanh"))) == \
        "leaky_relu parameter 0.3 in hidden layer 1 (declared: 0.1)"


def test_the_mapping_form_declares_parameters():
    caps = Capabilities(activations={"tanh": None, "leaky_relu": 0.01, "elu": ANY, "generalized_relu": (0.5, 2)})
    assert caps.params("leaky_relu") == {0.01} and caps.params("elu") is ANY
    assert caps.params("generalized_relu") == {0.5, 2.0} and caps.params("relu") == frozenset()
    assert caps.supports(spec(Layer(3, "leaky_relu", alpha=0.01), Layer(1, "elu", alpha=-7.0))) is None
    assert "leaky_relu parameter 0.1" in caps.supports(spec(Layer(3, "leaky_relu"), Layer(1, "tanh")))
    assert caps.supports(spec(Layer(3, "generalized_relu", alpha=2.0), Layer(1, "tanh"))) is None
    assert "(declared: 0.5, 2)" in caps.supports(spec(Layer(3, "generalized_relu"), Layer(1, "tanh")))


def test_the_default_and_everything_accept_any_parameter():
    for caps in (Capabilities(), Capabilities.everything(), builtin.capabilities):
        assert all(caps.params(a) is ANY for a in ("leaky_relu", "elu", "generalized_relu"))
        assert caps.activations == set(ACTIVATIONS) and caps.losses == set(LOSSES)
    assert builtin.capabilities.unchecked() == []


@pytest.mark.parametrize("bad, says", [
    (dict(activations={"tanh": 0.5}), "activation 'tanh' takes no parameter"),
    (dict(activations={"swish"}), r"unknown activation\(s\) \['swish'\]"),
    (dict(activations={"elu": float("nan")}), "elu parameters must be finite"),
    (dict(activations={"elu": "steep"}), "elu parameters must be numbers, None or ANY"),
    (dict(activations={"tanh"}, output_activations={"identity"}), r"output_activations \['identity'\] not among"),
    (dict(losses={"mse", "huber"}), r"unknown loss\(es\) or dtype\(s\) \['huber'\]"),
    (dict(layer_kinds={"conv"}), r"unknown layer kind\(s\) \['conv'\]"),
])
def test_bad_declarations_are_one_line_naming_the_culprit(bad, says):
    with pytest.raises((ValueError, TypeError), match=says) as info:
        Capabilities(**bad)
    assert "\n" not in str(info.value)


def test_maxout_is_declared_by_name_or_layer_kind_not_by_default():
    assert "maxout" not in Capabilities(activations={"tanh"}).activations
    assert Capabilities(activations={"tanh", "maxout"}).layer_kinds == {"dense", "maxout"}
    assert "maxout" in Capabilities(activations={"tanh"}, layer_kinds={"dense", "maxout"}).activations
    assert "maxout" not in Capabilities(layer_kinds={"dense"}).activations


@pytest.mark.parametrize("name", list(DECLARATIONS))
def test_hashable_picklable_json_and_replace_keep_the_declaration(name):
    caps = DECLARATIONS[name]
    back = pickle.loads(pickle.dumps(caps))
    assert back == caps and hash(back) == hash(caps)
    assert all(back.params(a) is ANY for a in back.activations if caps.params(a) is ANY)   # ANY stays ANY
    as_json = json.loads(json.dumps(caps.to_dict()))
    assert Capabilities(**as_json) == caps          # the isolation worker's fallback rebuilds it
    flipped = replace(caps, intermediates=True)     # what adapters do
    assert flipped.activation_params == caps.activation_params and flipped.intermediates


# --- the gate: hidden vs output, uniform, loss, dtype, regularizer, methods --------------------

def test_hidden_and_output_sets_and_uniform_hidden_layers():
    caps = Capabilities.sklearn_style(hidden={"sigmoid", "tanh"}, output="identity")
    assert caps.activations == {"sigmoid", "tanh", "identity"} and caps.uniform_hidden
    assert caps.supports(spec(Layer(3, "sigmoid"), Layer(2, "sigmoid"), Layer(1, "identity"))) is None
    assert caps.supports(spec(Layer(3, "identity"), Layer(1, "identity"))) == \
        "activation 'identity' in hidden layer 1 (declared hidden: sigmoid, tanh)"
    assert caps.supports(spec(Layer(3, "sigmoid"), Layer(1, "tanh"))) == \
        "activation 'tanh' in the output layer (declared output: identity)"
    assert caps.supports(spec(Layer(3, "sigmoid"), Layer(2, "tanh"), Layer(1, "identity"))) == \
        "hidden layers with different activations (sigmoid, tanh; declared: one for all hidden layers)"
    assert caps.supports(spec(Layer(1, "identity"))) is None    # no hidden layer at all


def test_uniform_means_one_parameter_too():
    caps = Capabilities.uniform({"leaky_relu": (0.01, 0.2)})
    same = spec(Layer(3, "leaky_relu", alpha=0.2), Layer(2, "leaky_relu", alpha=0.2), Layer(1, "identity"))
    assert caps.supports(same) is None
    mixed = same.with_(layers=(Layer(3, "leaky_relu", alpha=0.01),) + same.layers[1:])
    assert "hidden layers with different activations (leaky_relu(0.01), leaky_relu(0.2)" in caps.supports(mixed)


def test_loss_dtype_regularizer_and_methods():
    caps = Capabilities(activations={"identity"}, losses={"mse"}, dtypes={"float64"}, regularizer=False)
    one = Layer(1, "identity")
    assert caps.supports(spec(one, loss="hinge")) == "loss 'hinge' (declared: mse)"
    assert caps.supports(spec(one, dtype="float32")) == "dtype float32 (declared: float64)"
    assert caps.supports(spec(one, l2=0.1)) == "l2 regularizer (l2=0.1; declared: none)"
    assert caps.supports("intermediates") == "per-layer intermediates"
    assert caps.supports("perceptron") == "perceptron"
    assert builtin.capabilities.supports("perceptron") is None
    with pytest.raises(ValueError, match="expected a NetworkSpec"):
        caps.supports("gradients")


def test_unchecked_is_compact_one_line_per_kind():
    caps = Capabilities(activations={"identity": None, "tanh": None, "leaky_relu": 0.01},
                        output_activations={"identity"}, losses={"mse"}, dtypes={"float64"})
    assert caps.unchecked() == [
        "activations relu, abs, generalized_relu, sigmoid, softplus, elu, maxout",
        "leaky_relu parameters other than 0.01",
        "output activations other than identity",
        "losses l1, logistic, perceptron, hinge, bce, softmax_ce",
        "dtype float32", "per-layer intermediates", "perceptron"]
    assert "hidden layers with different activations" in Capabilities.sklearn_style().unchecked()
    assert "hidden layers with different activations" not in Capabilities.uniform("sigmoid").unchecked()


def test_presets_pass_keywords_through():
    caps = Capabilities.uniform("sigmoid", output="identity", losses={"mse", "l1"}, dtypes={"float64"},
                                regularizer=False)
    assert caps.allowed("hidden") == {"sigmoid"} and caps.allowed("output") == {"identity"}
    assert caps.losses == {"mse", "l1"} and caps.dtypes == {"float64"} and not caps.regularizer
    assert Capabilities.everything(intermediates=True).intermediates


# --- every generator draws inside the declaration, and draws something --------------------------

@pytest.mark.parametrize("name", list(DECLARATIONS))
def test_cases_for_draws_only_inside_the_declaration_and_never_nothing(name):
    caps = DECLARATIONS[name]
    specs = drawn_specs(cases_for(caps))
    assert len(specs) >= 60
    outside = [(s.describe(), caps.supports(s)) for s in specs if caps.supports(s) is not None]
    assert not outside, outside[:3]
    for loss in LOSSES:    # per loss, as the property suite asks: drawn where declared, refused where not
        if undeclared(caps, loss) is None:
            assert {s.loss for s in drawn_specs(cases_for(caps, loss))} == {loss}
        else:
            assert loss not in caps.losses
            with pytest.raises(ValueError, match="nothing declared to draw"):
                cases_for(caps, loss)


def test_declared_parameters_are_the_ones_drawn():
    fixed = {(l.activation, l.param) for s in drawn_specs(cases_for(DECLARATIONS["fixed slope"])) for l in s.layers}
    assert {p for a, p in fixed if a == "leaky_relu"} == {0.01}
    assert {p for a, p in fixed if a == "elu"} == {0.5, 1.0}
    # ANY: the built-in keeps being drawn with the whole table of parameters plus the default
    # (the table cases_for samples from, for both positions: sampling would miss some by chance)
    for position in ("hidden", "output"):
        table = declared_kinds(builtin.capabilities, position)
        assert table == _layer_kinds(None)      # what the suite drew before declarations had parameters
        for act, alphas in _ALPHAS.items():
            assert {alpha for a, alpha, _ in table if a == act} == {None, *alphas}, act


def test_uniform_and_output_declarations_shape_what_is_drawn():
    specs = drawn_specs(cases_for(DECLARATIONS["sklearn style"]))
    assert {s.layers[-1].activation for s in specs} == {"identity"}
    assert {s.layers[0].activation for s in specs if s.depth > 1} >= {"relu", "tanh", "sigmoid"}
    assert any(s.depth > 2 for s in specs)
    assert all(len({l.activation for l in s.layers[:-1]}) <= 1 for s in specs)
    assert all(s.depth == 1 for s in drawn_specs(cases_for(DECLARATIONS["no hidden layers"])))


def test_narrowing_for_the_training_rules_stays_inside_and_says_why_when_empty():
    for name, caps in DECLARATIONS.items():
        reason = undeclared(caps, **NETWORKS)
        if reason is None:
            impl = type("I", (), {"capabilities": caps})()
            specs = drawn_specs(network_cases(impl))
            assert specs and all(caps.supports(s) is None and s.dtype == "float64" and s.depth <= 2
                                 and "maxout" not in {l.activation for l in s.layers} for s in specs), name
    assert undeclared(DECLARATIONS["float32 only"], **NETWORKS) == "dtype float64 (declared: float32)"
    assert undeclared(Capabilities(activations={"maxout"}), **NETWORKS) == \
        "no output activation declared besides maxout, which these checks leave out"


def test_the_linear_checks_build_their_specs_through_the_gate():
    sklearn = DECLARATIONS["sklearn style"]
    assert sklearn.supports(tc.linear_spec(1, "logistic")) == "loss 'logistic' (declared: mse)"
    with pytest.raises(ValueError, match="not declared: loss 'hinge'"):
        tc.linear_gradient(type("I", (), {"capabilities": sklearn, "name": "s"})(), "hinge")
    no_reg = Capabilities(activations={"identity"}, losses={"hinge"}, regularizer=False)
    assert no_reg.supports(tc.linear_spec(3, "hinge")) is None
    assert no_reg.supports(tc.linear_spec(3, "hinge", 0.25)) is not None
    lams = set()

    @DRAW
    @given(case=svm_cases(lambdas=(0.0,)))
    def collect(case):
        lams.add(case[-1])
    collect()
    assert lams == {0.0}


def test_fixed_cases_go_through_the_gate():
    caps = DECLARATIONS["one loss"]
    declared = [cid for cid, c in fixed_cases().items() if caps.supports(c.spec) is None]
    assert declared and all(fixed_cases()[cid].spec.loss == "mse" for cid in declared)
    assert all(caps.supports(c.spec) is None for c in fixed_cases().values()
               if {l.activation for l in c.spec.layers} <= {"tanh", "identity"} and c.spec.loss == "mse"
               and c.spec.dtype == "float64")


def test_a_declaration_crosses_the_isolation_pipe_intact():
    from implementations.registry import load
    iso = load(f"{Path(__file__).parent}/plugins/adapted_builtin.py:TRANSPOSED", isolate=True)
    try:
        assert iso.capabilities == builtin.capabilities
        assert iso.capabilities.params("elu") is ANY
        assert cases_for(iso.capabilities) is cases_for(builtin.capabilities)   # one cached strategy
    finally:
        iso.close()
