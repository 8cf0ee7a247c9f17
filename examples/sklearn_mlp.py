"""scikit-learn's own MLPRegressor._backprop, plugged in as it is through the SklearnStyle adapter:

    backcheck check --impl examples/sklearn_mlp.py:IMPL        (needs scikit-learn installed)

What the adapter and this glue map, and why:
- coefs_[j] is (n_in, n_out) and intercepts_ a separate list: SklearnStyle transposes both ways.
- squared_error reports 0.5 * mean over samples AND outputs of (y - yhat)^2, but its gradients
  (delta = yhat - y, divided by n_samples) are those of 0.5 * mean over samples of the SUM over
  outputs, which is backcheck's mse cost; so the reported loss is 1/K of the function its
  gradients belong to for K outputs (scikit-learn issue #8349). loss_mean_over_outputs=True
  multiplies the data term of the loss by K and leaves the gradients alone.
- sklearn's L2 penalty is 0.5 * alpha * sum ||W||^2 / n_samples, so backcheck's l2 = lambda
  maps to alpha = lambda * N for a batch of N samples.
- one activation for all hidden layers (from identity, relu, tanh, logistic) and an identity
  output layer: the Capabilities.sklearn_style preset declares exactly that, so backcheck
  draws nothing else and lists the rest as not checked.
"""
from __future__ import annotations

import inspect

import numpy as np
from sklearn.neural_network import MLPRegressor

from implementations.adapters import SklearnStyle
from implementations.protocol import Capabilities

_ACTIVATION = {"identity": "identity", "relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}


def sklearn_backprop(model_class, out_activation: str, spec, coefs, intercepts, X, Y):
    """scikit-learn's own `_backprop` of an MLPRegressor / MLPClassifier set up for the spec's
    network as fit() would have left it: (loss, coef_grads, intercept_grads)."""
    hidden = [layer.activation for layer in spec.layers[:-1]] or ["identity"]
    model = model_class(hidden_layer_sizes=tuple(l.width for l in spec.layers[:-1]),
                        activation=_ACTIVATION[hidden[0]], alpha=spec.l2 * X.shape[0])
    # the state fit() would have set up
    model.n_layers_, model.out_activation_ = spec.depth + 1, out_activation
    model.coefs_, model.intercepts_ = list(coefs), list(intercepts)
    activations = [X] + [None] * spec.depth
    deltas = [None] * spec.depth
    coef_grads = [np.empty_like(c) for c in coefs]
    intercept_grads = [np.empty_like(b) for b in intercepts]
    takes_weight = "sample_weight" in inspect.signature(model_class._backprop).parameters
    weight = (None,) if takes_weight else ()
    return model._backprop(X, Y, *weight, activations, deltas, coef_grads, intercept_grads)


class MLPRegressorBackprop:
    """Calls MLPRegressor._backprop on the spec's network, in scikit-learn's conventions."""

    name = "sklearn-MLPRegressor"
    capabilities = Capabilities.sklearn_style(hidden=set(_ACTIVATION), output="identity", losses={"mse"},
                                              dtypes={"float64", "float32"})

    def gradients(self, spec, coefs, intercepts, X, Y):
        reason = self.capabilities.supports(spec)
        if reason:
            raise ValueError(f"MLPRegressor cannot express this network: {reason}")
        return sklearn_backprop(MLPRegressor, "identity", spec, coefs, intercepts, X, Y)


IMPL = SklearnStyle(MLPRegressorBackprop(), loss_mean_over_outputs=True, name="sklearn-MLPRegressor")
