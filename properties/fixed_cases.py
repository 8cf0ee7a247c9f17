"""The fixed, seeded set of networks `backcheck check` runs on every implementation: every
activation of the vocabulary in a hidden layer, crossed with every loss, plus the seeds'
worked examples (seed 002's 2-2-1 ReLU network, seed 004's XOR network on its ReLU kink)."""
from __future__ import annotations

import numpy as np

from properties.checks import Case
from reference.spec import ACTIVATIONS, LOSSES, Layer, NetworkSpec, init_params, random_batch

_SECOND = ["tanh", "sigmoid", "softplus", "relu", "elu", "identity"]  # a second hidden layer, rotating


def _hidden(name: str, width: int) -> Layer:
    return Layer(width, "maxout", pieces=2) if name == "maxout" else Layer(width, name)


def _case(i: int, act: str, loss: str, dtype: str = "float64") -> Case:
    n_out = 3 if loss == "softmax_ce" else (2 if loss in ("mse", "l1") else 1)
    spec = NetworkSpec(3, (_hidden(act, 4), _hidden(_SECOND[i % len(_SECOND)], 3), Layer(n_out, "identity")),
                       loss, l2=0.05 if i % 3 == 0 else 0.0, dtype=dtype)
    rng = np.random.default_rng(1000 + i)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 5)
    return Case.make(spec, params, X, Y, label=f"{act} x {loss}", direction_seed=i)


def seed_002_case() -> Case:
    """Seed 002's example: x in R², ReLU hidden layer of 2, linear output, MSE ½(t - y)²;
    a concrete instance away from the kink (both hidden pre-activations clearly nonzero)."""
    spec = NetworkSpec(2, (Layer(2, "relu"), Layer(1, "identity")), "mse")
    params = [(np.array([[0.5, -0.3], [0.8, -0.6]]), np.array([0.4, -0.2])),   # z¹ = (0.3, -0.6)
              (np.array([[1.5, -0.7]]), np.array([0.3]))]
    return Case.make(spec, params, np.array([[1.0, 2.0]]), np.array([[0.5]]), label="seed 002 (9 derivatives)")


def xor_case() -> Case:
    """Seed 004's XOR network: W = [[1,1],[1,1]], c = [0,-1], w = [1,-2], b = 0. It sits on the
    ReLU kink at (0,0), (0,1) and (1,0): the checks must say so, not fail."""
    spec = NetworkSpec(2, (Layer(2, "relu"), Layer(1, "identity")), "mse")
    params = [(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([0.0, -1.0])),
              (np.array([[1.0, -2.0]]), np.array([0.0]))]
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return Case.make(spec, params, X, np.array([[0.0], [1.0], [1.0], [0.0]]), label="seed 004 XOR (on the kink)")


def fixed_cases() -> dict[str, Case]:
    cases, i = {}, 0
    for act in ACTIVATIONS:
        for loss in LOSSES:
            c = _case(i, act, loss)
            cases[c.label.replace(" ", "")] = c
            i += 1
    for loss in ("mse", "softmax_ce", "logistic"):
        c = _case(i, "tanh", loss, dtype="float32")
        c.label += " float32"
        cases[c.label.replace(" ", "")] = c
        i += 1
    cases["seed002"] = seed_002_case()
    cases["seed004-xor"] = xor_case()
    return cases
