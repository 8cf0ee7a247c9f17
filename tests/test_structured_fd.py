"""The reference at scale (reference.structured_fd): its costs are the naive ones, per parameter,
to rounding; its gradients are jax_ref's; it says when a change crosses a kink as jax_ref does;
and the scale checks (properties.scale_checks) find and locate a single wrong entry with the
probability they state."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from implementations.numpy_mlp import builtin
from implementations.registry import load
from properties import errormodel, scale_checks
from reference import fd, jax_ref, structured_fd
from reference.spec import (ACTIVATIONS, LOSSES, Layer, NetworkSpec, flatten, init_params, mlp, random_batch,
                            unflatten)

# every activation (with a non-default parameter where it takes one) and maxout of 2 and 3 pieces
KINDS = [(a, None, 1) for a in ACTIVATIONS if a != "maxout"] + [
    ("leaky_relu", 0.3, 1), ("elu", 0.5, 1), ("generalized_relu", -0.5, 1), ("maxout", None, 2), ("maxout", None, 3)]


@st.composite
def small_cases(draw):
    loss = draw(st.sampled_from(list(LOSSES)))
    depth = draw(st.integers(1, 3))
    layers = []
    for j in range(depth):
        act, alpha, pieces = draw(st.sampled_from(KINDS))
        width = draw(st.integers(2 if (j == depth - 1 and loss == "softmax_ce") else 1, 3))
        layers.append(Layer(width, act, alpha, pieces))
    spec = NetworkSpec(draw(st.integers(1, 3)), tuple(layers), loss, draw(st.sampled_from([0.0, 0.1])))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    params = init_params(spec, rng, scale=draw(st.sampled_from([1.0, 3.0])))
    X, Y = random_batch(spec, rng, draw(st.integers(1, 4)))
    return spec, params, X, Y


def naive_cost(spec, theta, i, value, X, Y):
    """The cost of the network with flat parameter i set to value, by a whole forward pass of the
    padded reference, and the float64 rounding bound e_C of that one evaluation."""
    changed = theta.copy()
    changed[i] = value
    r = jax_ref.gradients(spec, unflatten(spec, changed), X, Y)
    return r.cost, fd.cost_rounding(r.cost, r.output_sensitivity, spec.depth)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=small_cases())
def test_structured_costs_and_gradients_are_the_naive_ones_to_rounding(case):
    """Per parameter: the structured cost of each central-difference point is a whole forward
    pass's, so D = (C+ - C-) / step is the naive central difference to rounding; the kink test
    is the padded reference's; the gradients are jax_ref's."""
    spec, params, X, Y = case
    net = structured_fd.Network(spec, params, X, Y)
    theta = net.theta
    h = fd.default_step(theta)
    idx = np.arange(theta.size)
    plus, minus = theta + h, theta - h
    c, crossed = net.costs(np.concatenate([idx, idx]), np.concatenate([plus, minus]))
    naive = [naive_cost(spec, theta, i, v[i], X, Y) for v in (plus, minus) for i in idx]
    want, e_c = (np.array(x) for x in zip(*naive))
    # each cost within the rounding of two float64 evaluations of it ...
    assert np.all(np.abs(c - want) <= e_c + e_c), np.max(np.abs(c - want) / e_c)
    # ... so the central differences agree to rounding
    n = theta.size
    den = (plus - theta) + (theta - minus)   # the representable step, as reference.fd divides by
    D, D_naive = (c[:n] - c[n:]) / den, (want[:n] - want[n:]) / den
    assert np.all(np.abs(D - D_naive) <= 2 * (e_c[:n] + e_c[n:]) / den)
    pk = jax_ref.pack(spec, params, X, Y)
    _, crossed_ref = jax_ref.perturbed_costs(pk, np.concatenate([idx, idx]), np.concatenate([plus, minus]))
    assert np.array_equal(crossed, crossed_ref)

    got, ref = net.gradients(), jax_ref.gradients(spec, params, X, Y)
    m = errormodel.model(spec, params, X, Y, "float64")   # two float64 computations of one gradient
    e_c = fd.cost_rounding(ref.cost, ref.output_sensitivity, spec.depth)
    assert abs(got.cost - ref.cost) <= 2 * e_c
    assert np.all(np.abs(got.flat - ref.flat) <= 2 * m.tol)
    for a, b, tol in zip(got.deltas, ref.deltas, m.delta_tol):
        assert a.shape == b.shape and np.all(np.abs(a - b) <= 2 * tol)
    assert got.on_kink == ref.on_kink
    assert got.output_sensitivity == pytest.approx(ref.output_sensitivity, rel=1e-9, abs=1e-300)
    if ref.on_kink:
        assert np.all(np.abs(got.flat_other_side - ref.flat_other_side) <= 2 * m.tol)


KINKED = [   # every kinked activation and loss: maxout ties, relu, abs, leaky, elu, generalized relu
    NetworkSpec(3, (Layer(4, "maxout", pieces=3), Layer(5, "relu"), Layer(2, "abs")), "l1", 0.1),
    mlp(3, [3, 1], ["leaky_relu", "identity"], "hinge"),
    NetworkSpec(2, (Layer(3, "elu", alpha=0.5), Layer(1, "generalized_relu", alpha=0.3)), "perceptron"),
]


@pytest.mark.parametrize("spec", KINKED, ids=lambda s: s.describe())
def test_large_changes_that_cross_a_kink_say_so_as_the_padded_reference_does(spec):
    rng = np.random.default_rng(3)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 6)
    net, pk = structured_fd.Network(spec, params, X, Y), jax_ref.pack(spec, params, X, Y)
    idx = np.arange(net.theta.size)
    values = net.theta + 0.5 * (1 + np.abs(net.theta))
    c, crossed = net.costs(idx, values)
    c_ref, crossed_ref = jax_ref.perturbed_costs(pk, idx, values)
    assert crossed.any()   # else the equality below proves nothing
    assert np.array_equal(crossed, crossed_ref)
    np.testing.assert_allclose(c, c_ref, rtol=1e-13, atol=1e-15)


def test_a_stencil_across_a_relu_kink_is_a_kink_entry_of_the_checkers():
    spec = mlp(2, [3, 1], ["relu", "identity"], "mse")
    rng = np.random.default_rng(0)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 4)
    (W, b), _ = params
    b[1] = -(X[0] @ W[1]) + 1e-9         # unit 1 sits 1e-9 from its kink on sample 0
    net = structured_fd.Network(spec, params, X, Y)
    ref = net.gradients()
    e_c = fd.cost_rounding(ref.cost, ref.output_sensitivity, spec.depth)
    r = fd.central_checker(net.costs, spec, net.theta, ref.flat, e_c)
    r_ref = fd.central_checker(lambda i, v: jax_ref.perturbed_costs(jax_ref.pack(spec, params, X, Y), i, v),
                               spec, net.theta, ref.flat, e_c)
    assert r.kinks.any() and np.array_equal(r.kinks, r_ref.kinks)
    assert r.kinks[spec.shapes()[0][0][0] * 2 + 1]   # b1[1], the unit's own bias
    assert r.verdict.n_kinks == int(r.kinks.sum()) and r.verdict.status == "passed", r.verdict.summary()


def test_chunks_and_their_padding_change_nothing(monkeypatch):
    spec = NetworkSpec(3, (Layer(4, "maxout", pieces=2), Layer(3, "tanh"), Layer(2, "identity")), "softmax_ce")
    rng = np.random.default_rng(5)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 3)
    net = structured_fd.Network(spec, params, X, Y)
    idx = np.tile(np.arange(net.theta.size), 3)
    values = net.theta[idx] + rng.standard_normal(idx.size) * 1e-3
    whole = net.costs(idx, values)
    monkeypatch.setattr(structured_fd, "CHUNK_ELEMENTS", 1)   # 16 changes a call: many chunks, a padded last one
    assert structured_fd.chunk_size(spec, 3, 0, idx.size) == 16
    chunked = net.costs(idx, values)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-15, atol=0)
    assert np.array_equal(chunked[1], whole[1])


def test_chunk_size_bounds_the_downstream_arrays():
    spec = mlp(784, [128, 10], ["tanh", "identity"], "softmax_ce")
    # a first-layer change builds (P, N, 10) arrays, not (P, N, 784) or (P, N, 128) ones
    size = structured_fd.chunk_size(spec, 32, 0, 10 ** 6)
    assert size * 32 * 10 <= structured_fd.CHUNK_ELEMENTS < 4 * size * 32 * 10
    assert structured_fd.chunk_size(spec, 32, 0, 20) == 64   # few changes: a small chunk


# --- the scale checks on a modest network ----------------------------------------------------

MODEST = mlp(100, [32, 10], ["relu", "identity"], "softmax_ce")


@pytest.fixture(scope="module")
def modest():
    rng = np.random.default_rng(7)
    params = init_params(MODEST, rng)
    X, Y = random_batch(MODEST, rng, 32)
    return scale_checks.NetworkCase.make(MODEST, params, X, Y, label="modest")


def test_full_checks_pass_the_builtin_and_find_and_locate_a_single_wrong_entry(modest):
    ok = scale_checks.run_checks(load("builtin"), modest)
    assert {v.check for v in ok} == set(scale_checks.MODES["full"])
    assert all(v.status == "passed" for v in ok), [v.summary() for v in ok if v.status != "passed"]
    bad = {v.check: v for v in scale_checks.run_checks(load("implementations.mutants:SingleEntryOff"), modest,
                                                       ("vs_fd", "richardson"))}
    for v in bad.values():
        assert v.status == "failed" and str(v.worst) == "layer 1 W[0,0]", v.summary()
        assert "1 of" in v.message                       # that entry and no other
        assert v.reproducer == ""   # no command given: nothing to repeat (no megabytes of parameters)


def test_sampled_mode_finds_the_entry_exactly_when_it_draws_it(modest):
    """The sampled check decides every entry it draws, so it finds a wrong one exactly when that
    one is drawn: over seeds, found <=> drawn, at the stated rate 1 - miss probability."""
    ctx = scale_checks.ScaleContext(load("implementations.mutants:SingleEntryOff"), modest)
    found, stated = [], set()
    for seed in range(40):
        v = scale_checks.check_sampled(ctx, fraction=0.25, seed=seed)
        drawn, _ = scale_checks.stratified_sample(MODEST, 0.25, seed)
        assert (v.status == "failed") == (0 in drawn), v.summary()
        if v.status == "failed":
            assert str(v.worst) == "layer 1 W[0,0]"
        found.append(v.status == "failed")
        w1 = v.extra["strata"][0]
        assert (w1["layer"], w1["param"], w1["entries"]) == (1, "W", 3200)
        stated.add(w1["miss_probability"])
    assert stated == {1 - 800 / 3200}
    assert f"{v.extra['miss_probability']:.3g}" in v.message
    # 40 draws at p = 0.25: a count outside [2, 19] has probability < 1e-3
    assert 2 <= sum(found) <= 19


def test_stratified_sample_covers_every_layer_and_both_w_and_b():
    idx, rows = scale_checks.stratified_sample(MODEST, 0.01, 0)
    assert [(r["layer"], r["param"]) for r in rows] == [(1, "W"), (1, "b"), (2, "W"), (2, "b")]
    assert [r["sampled"] for r in rows] == [32, 16, 16, 10]   # at least 16 per stratum, all of a small one
    assert len(set(idx)) == idx.size == sum(r["sampled"] for r in rows)
    for (_, _, start, stop), r in zip(scale_checks.strata(MODEST), rows):
        assert np.count_nonzero((idx >= start) & (idx < stop)) == r["sampled"]


def test_directional_mode_catches_a_single_entry_above_its_stated_threshold(modest):
    ok = scale_checks.check_directions(scale_checks.ScaleContext(load("builtin"), modest), k=4)
    assert ok.status == "passed" and ok.n_entries == 4, ok.summary()
    threshold = ok.extra["for_single_errors_above"]
    assert ok.extra["miss_probability"] == 0.0 and 0 < threshold < math.inf
    assert f"{threshold:.3g}" in ok.message

    class Planted(type(builtin)):
        name = "planted"

        def gradients(self, spec, params, X, Y):
            cost, grads = super().gradients(spec, params, X, Y)
            grads[0][0][3, 5] += 1.01 * threshold
            return cost, grads
    bad = scale_checks.check_directions(scale_checks.ScaleContext(Planted(), modest), k=4)
    assert bad.status == "failed", bad.summary()
    assert bad.worst.param == "direction"


def test_a_network_case_reproduces_by_its_command(modest):
    case = scale_checks.NetworkCase.make(modest.spec, modest.params, modest.X, modest.Y,
                                         command="backcheck check --network 100,32,10 --activation relu")
    assert case.reproducer("x.py:IMPL", "vs_fd") == "backcheck check --network 100,32,10 --activation relu --impl x.py:IMPL"
    assert flatten(case.params).size == MODEST.n_params
