"""scikit-learn's own `_backprop`, plugged in through the SklearnStyle adapter:

    backcheck check --impl tests/zoo/sklearn_mlp.py:IMPL          MLPRegressor (examples/sklearn_mlp.py)
    backcheck check --impl tests/zoo/sklearn_mlp.py:CLASSIFIER    MLPClassifier

MLPClassifier's output layer applies its own output activation and log_loss to it; in
backcheck's terms that layer is an identity layer (the logits) and the loss takes the logits:
    out_activation_ "logistic" + binary log loss  <->  identity output + bce
    out_activation_ "softmax"  + log loss         <->  identity output + softmax_ce
Its output delta is p - y (sigmoid or softmax probabilities minus the labels), and its loss
averages over the samples and sums over the outputs, as backcheck's cost does (no #8349
rescaling here). The loss clips p to [eps, 1 - eps] before the log, as scikit-learn does.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sklearn.neural_network import MLPClassifier

from implementations.adapters import SklearnStyle
from implementations.protocol import Capabilities
from implementations.registry import resolve

# the regressor is the example users copy, loaded as a file as `--impl` would
IMPL = resolve(str(Path(__file__).resolve().parents[2] / "examples" / "sklearn_mlp.py") + ":IMPL")
_example = sys.modules[type(IMPL.inner).__module__]
_ACTIVATION = _example._ACTIVATION   # backcheck name -> scikit-learn's
_OUT = {"bce": "logistic", "softmax_ce": "softmax"}


class MLPClassifierBackprop:
    """Calls MLPClassifier._backprop on the spec's network, in scikit-learn's conventions."""

    name = "zoo-sklearn-MLPClassifier"
    capabilities = Capabilities.sklearn_style(hidden=set(_ACTIVATION), output="identity", losses=set(_OUT),
                                              layer_kinds={"dense"}, dtypes={"float64", "float32"})

    def gradients(self, spec, coefs, intercepts, X, Y):
        reason = self.capabilities.supports(spec)
        if reason:
            raise ValueError(f"MLPClassifier cannot express this network: {reason}")
        return _example.sklearn_backprop(MLPClassifier, _OUT[spec.loss], spec, coefs, intercepts, X, Y)


CLASSIFIER = SklearnStyle(MLPClassifierBackprop(), name="zoo-sklearn-MLPClassifier")
