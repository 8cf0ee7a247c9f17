"""A small plug-in declaring one loss: the built-in's gradients, but only mse with tanh and
identity layers, float64, no intermediates and no perceptron. Everything else in the suite is
undeclared and must show as SKIPPED with its reason, never as passed:

    python -m pytest properties --impl tests/plugins/one_loss.py:IMPL -rs -q
"""
from __future__ import annotations

from implementations.numpy_mlp import builtin
from implementations.protocol import Capabilities


class OneLoss:
    name = "one-loss"
    capabilities = Capabilities(activations={"tanh", "identity"}, losses={"mse"}, dtypes={"float64"})

    def gradients(self, spec, params, X, Y):
        return builtin.gradients(spec, params, X, Y)


IMPL = OneLoss()
