"""The built-in implementation re-expressed in each foreign convention and wrapped back by the
matching adapter. Each object here must pass the whole suite exactly as the built-in does:

    pytest properties --impl tests/plugins/adapted_builtin.py:TRANSPOSED   (likewise for the others)

The foreign versions are exact inverses of the adapters, so a failure here is an adapter bug.
"""
from __future__ import annotations


from implementations import adapters as A
from implementations.numpy_mlp import builtin

CAPS = builtin.capabilities


def _t(params):
    return [(W.T, b) for W, b in params]


class _Convention:
    name, capabilities = "builtin", CAPS
    perceptron = builtin.perceptron  # conventions do not touch the perceptron: passed through


class TransposedConvention(_Convention):
    """Takes and returns Omega = W.T (n_in, n_out)."""
    name = "builtin-transposed"

    def gradients(self, spec, tparams, X, Y):
        cost, grads = builtin.gradients(spec, _t(tparams), X, Y)
        return cost, _t(grads)

    def intermediates(self, spec, tparams, X, Y):
        return builtin.intermediates(spec, _t(tparams), X, Y)


class SklearnConvention(_Convention):
    """coefs (n_in, n_out), intercepts in their own lists; with mean_over_outputs, reports the
    data loss also averaged over the outputs, as scikit-learn's squared_error does."""
    name = "builtin-sklearn"

    def __init__(self, mean_over_outputs=False):
        self.mean_over_outputs = mean_over_outputs

    def gradients(self, spec, coefs, intercepts, X, Y):
        params = list(zip([c.T for c in coefs], intercepts))
        cost, grads = builtin.gradients(spec, params, X, Y)
        if self.mean_over_outputs:
            reg = A.l2_term(spec, params)
            cost = (cost - reg) / spec.n_out + reg
        return cost, [gW.T for gW, _ in grads], [gb for _, gb in grads]

    def intermediates(self, spec, coefs, intercepts, X, Y):
        return builtin.intermediates(spec, list(zip([c.T for c in coefs], intercepts)), X, Y)


class FlatConvention(_Convention):
    """theta laid out by adapters.flat_layout(spec, order)."""
    name = "builtin-flat"

    def __init__(self, order="interleaved"):
        self.order = order

    def gradients(self, spec, theta, X, Y):
        cost, grads = builtin.gradients(spec, A.from_flat(theta, spec, self.order), X, Y)
        return cost, A.to_flat(grads, self.order)

    def intermediates(self, spec, theta, X, Y):
        return builtin.intermediates(spec, A.from_flat(theta, spec, self.order), X, Y)


class SummedConvention(_Convention):
    """sum over samples of the loss, plus the (unscaled) l2 term."""
    name = "builtin-summed"

    def gradients(self, spec, params, X, Y):
        cost, grads = builtin.gradients(spec, params, X, Y)
        n, l2 = X.shape[0], spec.l2
        reg = A.l2_term(spec, params)
        return n * (cost - reg) + reg, [((gW - l2 * W) * n + l2 * W, gb * n) for (gW, gb), (W, _) in zip(grads, params)]

    def intermediates(self, spec, params, X, Y):
        got = builtin.intermediates(spec, params, X, Y)
        return type(got)(got.pre_activations, got.activations, [d * X.shape[0] for d in got.deltas])


class PerSampleConvention(_Convention):
    """One sample x (n_in,), y (n_out,) at a time."""
    name = "builtin-per-sample"

    def gradients(self, spec, params, x, y):
        return builtin.gradients(spec, params, x[None, :], y[None, :])

    def intermediates(self, spec, params, x, y):
        got = builtin.intermediates(spec, params, x[None, :], y[None, :])
        return type(got)(*[[a[0] for a in field] for field in (got.pre_activations, got.activations, got.deltas)])


TRANSPOSED = A.TransposedWeights(TransposedConvention(), name="transposed(numpy-builtin)")
SKLEARN_STYLE = A.SklearnStyle(SklearnConvention(), name="sklearn-style(numpy-builtin)")
SKLEARN_MEAN_LOSS = A.SklearnStyle(SklearnConvention(mean_over_outputs=True), loss_mean_over_outputs=True,
                                   name="sklearn-style-mean-loss(numpy-builtin)")
FLAT = A.FlatVector(FlatConvention(), name="flat(numpy-builtin)")
FLAT_WEIGHTS_FIRST = A.FlatVector(FlatConvention("weights_first"), order="weights_first",
                                  name="flat-weights-first(numpy-builtin)")
SUMMED = A.SummedCost(SummedConvention(), name="summed(numpy-builtin)")
PER_SAMPLE = A.PerSample(PerSampleConvention(), name="per-sample(numpy-builtin)")

ALL = {"TRANSPOSED": TRANSPOSED, "SKLEARN_STYLE": SKLEARN_STYLE, "SKLEARN_MEAN_LOSS": SKLEARN_MEAN_LOSS,
       "FLAT": FLAT, "FLAT_WEIGHTS_FIRST": FLAT_WEIGHTS_FIRST, "SUMMED": SUMMED, "PER_SAMPLE": PER_SAMPLE}
