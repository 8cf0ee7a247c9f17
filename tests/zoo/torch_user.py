"""PyTorch autograd as its users write it: torch.nn.functional at its defaults, `loss.backward()`,
float64 or float32 as asked. Imports without torch (`torch` is None then, and gradients() raises).

    backcheck check --impl tests/zoo/torch_user.py:IMPL

Library defaults kept (what users get): F.leaky_relu slope 0.01, F.elu alpha 1, torch.sigmoid'
and torch.tanh' computed from the output, (sigmoid(x) - y) in binary_cross_entropy_with_logits'
backward, softmax - onehot in cross_entropy's.

Two defaults that are WRONG in float64, so replaced (backcheck flags them, rightly):
- F.softplus returns x itself above threshold=20: off by log1p(e^-x) ~ 2e-9 relative, ~1e5 u in
  float64 (below float32's u). THRESHOLD per dtype keeps log1p(e^-x) under u/4 (float64: 40).
- F.soft_margin_loss computes log1p(exp(-y x)): inf once -y x > 709 (88 in float32), and its
  backward -y z / (1 + z) is NaN there. The logistic loss is F.softplus(-y x) instead.
"""
from __future__ import annotations

from implementations.protocol import Capabilities

try:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)  # small matrices; the harness's machine is shared
    THRESHOLD = {torch.float64: 40.0, torch.float32: 20.0}   # F.softplus's default is 20
except ImportError:  # the zoo's tests skip this implementation then
    torch = F = None

ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": lambda z: torch.sigmoid(z),
    "tanh": lambda z: torch.tanh(z),
    "relu": lambda z: F.relu(z),
    "leaky_relu": lambda z: F.leaky_relu(z),   # negative_slope=0.01
    "elu": lambda z: F.elu(z),                 # alpha=1.0
    "softplus": lambda z: F.softplus(z, threshold=THRESHOLD[z.dtype]),
}

# batch-mean losses of the output yhat (N, K) and targets t, summed over the K outputs
LOSSES = {
    "mse": lambda yhat, t: 0.5 * F.mse_loss(yhat, t, reduction="sum") / yhat.shape[0],
    "l1": lambda yhat, t: F.l1_loss(yhat, t, reduction="sum") / yhat.shape[0],
    "bce": lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0],
    "softmax_ce": lambda z, t: F.cross_entropy(z, t.argmax(dim=1)),
    "logistic": lambda yhat, t: F.softplus(-t * yhat, threshold=THRESHOLD[yhat.dtype]).sum() / yhat.shape[0],
    "hinge": lambda yhat, t: torch.clamp(1 - t * yhat, min=0).sum() / yhat.shape[0],
    "perceptron": lambda yhat, t: torch.clamp(-t * yhat, min=0).sum() / yhat.shape[0],
}


class TorchUser:
    name = "zoo-torch-user"
    capabilities = Capabilities(activations={"identity": None, "sigmoid": None, "tanh": None, "relu": None,
                                         "leaky_relu": 0.01, "elu": None, "softplus": None},
                                losses=set(LOSSES), layer_kinds={"dense"}, dtypes={"float64", "float32"},
                                regularizer=True)

    def gradients(self, spec, params, X, Y):
        if torch is None:
            raise ImportError("torch is not installed")
        reason = self.capabilities.supports(spec)
        if reason:
            raise ValueError(f"not expressible with torch.nn.functional's defaults: {reason}")
        tparams = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]
        h = torch.from_numpy(X)
        for layer, (W, b) in zip(spec.layers, tparams):
            h = ACTIVATIONS[layer.activation](F.linear(h, W, b))
        loss = LOSSES[spec.loss](h, torch.from_numpy(Y))
        if spec.l2:
            loss = loss + 0.5 * spec.l2 * sum((W ** 2).sum() for W, _ in tparams)
        loss.backward()
        return loss.item(), [(W.grad.numpy(), b.grad.numpy()) for W, b in tparams]


IMPL = TorchUser()
