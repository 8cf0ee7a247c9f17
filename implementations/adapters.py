"""Adapters: real code with its own conventions plugs in as it is, and the checks see only the
shared conventions (W (n_out, n_in), cost = batch mean + l2/2 sum ||W||^2; DEVELOPERS.md).

Each adapter wraps an object with a `gradients` method, or a bare function, that follows one
foreign convention, and exposes the standard protocol (name, capabilities, gradients, and
intermediates / perceptron where the wrapped object has them and the adapter can translate
them). Adapters compose, outermost first: `SummedCost(TransposedWeights(fn, capabilities=...))`.

    TransposedWeights   fn(spec, [(W.T, b)], X, Y) -> (cost, [(dW.T, db)])   the slides' Omega (n_{j-1}, n_j)
    SklearnStyle        fn(spec, coefs, intercepts, X, Y) -> (loss, coef_grads, intercept_grads)
    FlatVector          fn(spec, theta, X, Y) -> (cost, dtheta), theta laid out by flat_layout()
    SummedCost          fn(spec, params, X, Y) -> (sum over samples + l2 term, its gradients)
    PerSample           fn(spec_without_l2, params, x, y) -> (loss, grads) for one sample

The l2 term is a function of the parameters alone, never of a sample: adapters that rescale
or accumulate the data term take it out first and put it back once, unscaled.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from implementations.protocol import Capabilities, Intermediates


def l2_term(spec, params) -> float:
    """The shared regularizer l2/2 sum ||W||^2 (weights only)."""
    return 0.5 * spec.l2 * sum(float(np.sum(np.square(W, dtype=np.float64))) for W, _ in params) if spec.l2 else 0.0


def _rescale_data_term(spec, params, cost, grads, cost_scale, grad_scale):
    """cost = cost_scale * (cost - reg) + reg and grads likewise with grad_scale: the data
    term rescaled, the regularizer left as it is."""
    reg = l2_term(spec, params)
    cost = cost_scale * (float(cost) - reg) + reg
    if grad_scale != 1:
        grads = [((gW - spec.l2 * W) * grad_scale + spec.l2 * W, gb * grad_scale)
                 for (gW, gb), (W, _) in zip(grads, params)]
    return cost, grads


class Adapter:
    """Base class: subclasses translate one convention. `inner` is an object with a
    `gradients` method (and maybe `intermediates`, `perceptron`, `name`, `capabilities`) or a
    bare function used as `gradients`."""

    kind = "adapter"

    def __init__(self, inner, *, name: str | None = None, capabilities: Capabilities | None = None):
        self.inner = inner
        self._gradients = getattr(inner, "gradients", inner)
        if not callable(self._gradients):
            raise TypeError(f"{type(self).__name__}: {inner!r} has no gradients() and is not callable")
        caps = capabilities or getattr(inner, "capabilities", None)
        if not isinstance(caps, Capabilities):
            raise TypeError(f"{type(self).__name__}: {inner!r} declares no capabilities; "
                            "pass capabilities=Capabilities(...)")
        inner_name = getattr(inner, "name", None) or getattr(inner, "__name__", type(inner).__name__)
        self.name = name or f"{self.kind}({inner_name})"
        # declare only what this adapter can really deliver
        can_int = caps.intermediates and callable(getattr(inner, "intermediates", None))
        can_perc = caps.perceptron and callable(getattr(inner, "perceptron", None))
        self.capabilities = replace(caps, intermediates=can_int, perceptron=can_perc)
        if can_perc:
            self.perceptron = inner.perceptron  # no weight-layout or cost convention involved

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r}, name={self.name!r})"


class TransposedWeights(Adapter):
    """Weights stored (n_in, n_out) (the slides' Omega in R^{n_{j-1} x n_j}, h^j = f(h^{j-1} Omega^j + b^j))."""

    kind = "transposed"

    @staticmethod
    def _t(params):
        return [(np.ascontiguousarray(W.T), b) for W, b in params]

    def gradients(self, spec, params, X, Y):
        cost, grads = self._gradients(spec, self._t(params), X, Y)
        return cost, self._t(grads)

    def intermediates(self, spec, params, X, Y):
        return self.inner.intermediates(spec, self._t(params), X, Y)  # z, h, deltas: no weight layout


class SklearnStyle(Adapter):
    """scikit-learn's layout: coefs[j] (n_in, n_out) and intercepts[j] (n_out,) in separate
    lists, grads returned as (loss, coef_grads, intercept_grads).

    loss_mean_over_outputs: the reported loss also averages over the K output units, while the
    gradients belong to the loss summed over them. scikit-learn's squared_error is
    0.5 * mean_n mean_k (y - yhat)^2 but its gradients are those of 0.5 * mean_n sum_k
    (scikit-learn issue #8349); the adapter multiplies the data term of the loss by K."""

    kind = "sklearn"

    def __init__(self, inner, *, loss_mean_over_outputs: bool = False, **kw):
        super().__init__(inner, **kw)
        self.loss_mean_over_outputs = loss_mean_over_outputs

    def gradients(self, spec, params, X, Y):
        coefs = [np.ascontiguousarray(W.T) for W, _ in params]
        loss, coef_grads, intercept_grads = self._gradients(spec, coefs, [b for _, b in params], X, Y)
        grads = [(np.ascontiguousarray(gW.T), gb) for gW, gb in zip(coef_grads, intercept_grads)]
        if self.loss_mean_over_outputs:
            loss, grads = _rescale_data_term(spec, params, loss, grads, spec.n_out, 1)
        return loss, grads

    def intermediates(self, spec, params, X, Y):
        return self.inner.intermediates(spec, [np.ascontiguousarray(W.T) for W, _ in params],
                                        [b for _, b in params], X, Y)


def flat_layout(spec_or_params, order: str = "interleaved") -> list[tuple[int, str, tuple, int]]:
    """The shape table of a flat parameter vector: (layer 1-based, 'W' or 'b', shape, offset)
    per block. Blocks are row-major; order 'interleaved' is W1 b1 W2 b2 ... (the order of
    reference.spec.flatten), 'weights_first' is W1 W2 ... b1 b2 ...
    Takes a NetworkSpec or a parameter list (whose array shapes are then used, so that
    FlatVector composes with TransposedWeights)."""
    if hasattr(spec_or_params, "shapes"):
        shapes = spec_or_params.shapes()
    else:
        shapes = [(np.shape(W), np.shape(b)) for W, b in spec_or_params]
    blocks = [(j, "W", ws) for j, (ws, _) in enumerate(shapes, 1)]
    bias = [(j, "b", bs) for j, (_, bs) in enumerate(shapes, 1)]
    if order == "interleaved":
        blocks = [blk for pair in zip(blocks, bias) for blk in pair]
    elif order == "weights_first":
        blocks = blocks + bias
    else:
        raise ValueError(f"flat_layout: order must be 'interleaved' or 'weights_first', got {order!r}")
    out, offset = [], 0
    for j, what, shape in blocks:
        out.append((j, what, tuple(shape), offset))
        offset += int(np.prod(shape))
    return out


def to_flat(params, order: str = "interleaved") -> np.ndarray:
    pick = {(j, w): a for j, (W, b) in enumerate(params, 1) for w, a in (("W", W), ("b", b))}
    return np.concatenate([np.ravel(pick[(j, w)]) for j, w, _, _ in flat_layout(params, order)])


def from_flat(theta, like, order: str = "interleaved") -> list:
    """Split theta into (W, b) pairs shaped by `like` (a NetworkSpec or a parameter list)."""
    parts = {}
    for j, what, shape, off in flat_layout(like, order):
        parts[(j, what)] = np.reshape(theta[off:off + int(np.prod(shape))], shape)
    return [(parts[(j, "W")], parts[(j, "b")]) for j in range(1, len(parts) // 2 + 1)]


class FlatVector(Adapter):
    """Parameters as one flat vector theta whose shape table is flat_layout(params, order)."""

    kind = "flat"

    def __init__(self, inner, *, order: str = "interleaved", **kw):
        flat_layout([], order)  # reject a bad order now, not at the first call
        super().__init__(inner, **kw)
        self.order = order

    def gradients(self, spec, params, X, Y):
        cost, dtheta = self._gradients(spec, to_flat(params, self.order), X, Y)
        dtheta = np.asarray(dtheta)
        n = sum(int(np.prod(np.shape(a))) for pair in params for a in pair)
        if dtheta.shape != (n,):
            raise ValueError(f"the flat gradient has shape {dtheta.shape}, expected ({n},)")
        return cost, from_flat(dtheta, params, self.order)

    def intermediates(self, spec, params, X, Y):
        return self.inner.intermediates(spec, to_flat(params, self.order), X, Y)


class SummedCost(Adapter):
    """A cost summed over the batch instead of averaged: sum_n loss_n + l2/2 sum ||W||^2, and
    its gradients. The data term is divided by N; the l2 term is not (it is no sample's)."""

    kind = "summed"

    def gradients(self, spec, params, X, Y):
        cost, grads = self._gradients(spec, params, X, Y)
        n = X.shape[0]
        return _rescale_data_term(spec, params, cost, grads, 1.0 / n, 1.0 / n)

    def intermediates(self, spec, params, X, Y):
        got = self.inner.intermediates(spec, params, X, Y)  # deltas of the sum are N times ours
        return Intermediates(got.pre_activations, got.activations, [d / X.shape[0] for d in got.deltas])


class PerSample(Adapter):
    """A function of one sample x (n_in,), y (n_out,) returning its loss and gradients. The
    adapter loops over the batch and averages. The wrapped function is given the spec with
    l2 = 0 and the adapter adds the l2 term once per batch: the regularizer belongs to the
    batch cost, not to any sample (adding it per sample happens to average out for a mean, and
    silently multiplies it by N for a sum)."""

    kind = "per-sample"

    def gradients(self, spec, params, X, Y):
        spec0 = spec.with_(l2=0.0) if spec.l2 else spec
        total, acc = 0.0, None
        for x, y in zip(X, Y):
            loss, grads = self._gradients(spec0, params, x, y)
            total += float(loss)
            if acc is None:
                acc = [[np.array(gW, copy=True), np.array(gb, copy=True)] for gW, gb in grads]
            else:
                for a, (gW, gb) in zip(acc, grads):
                    a[0] += gW
                    a[1] += gb
        n = X.shape[0]
        grads = [(gW / n + spec.l2 * W, gb / n) for (gW, gb), (W, _) in zip(acc, params)]
        return total / n + l2_term(spec, params), grads

    def intermediates(self, spec, params, X, Y):
        spec0 = spec.with_(l2=0.0) if spec.l2 else spec
        per = [self.inner.intermediates(spec0, params, x, y) for x, y in zip(X, Y)]
        stack = lambda field: [np.stack([np.ravel(getattr(p, field)[j]) for p in per])
                               for j in range(spec.depth)]
        return Intermediates(stack("pre_activations"), stack("activations"),
                             [d / X.shape[0] for d in stack("deltas")])


# --- deprecated ------------------------------------------------------------------------------

def __getattr__(name):
    # LayeredCapabilities(output_activations=..., uniform_hidden=...) was folded into
    # Capabilities, whose constructor takes the same arguments: old plug-ins keep loading.
    if name == "LayeredCapabilities":
        import warnings
        warnings.warn("implementations.adapters.LayeredCapabilities is deprecated: use "
                      "implementations.protocol.Capabilities (same arguments) or Capabilities.sklearn_style()",
                      DeprecationWarning, stacklevel=2)
        return Capabilities
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
