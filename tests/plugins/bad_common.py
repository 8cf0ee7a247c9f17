"""Shared by the bad plug-ins: the built-in implementation with one thing broken.

TRIGGER_N: process-killing plug-ins misbehave only on batches of this many samples, so a test
can show that the cases around the bad one still get checked by a restarted worker."""
from __future__ import annotations

from implementations.numpy_mlp import builtin
from implementations.protocol import Capabilities

TRIGGER_N = 13


class Broken:
    """gradients() returns corrupt(spec, params, X, Y, cost, grads) computed from the built-in's result."""

    capabilities = Capabilities()

    def __init__(self, name, corrupt):
        self.name, self.corrupt = name, corrupt

    def gradients(self, spec, params, X, Y):
        cost, grads = builtin.gradients(spec, params, X, Y)
        return self.corrupt(spec, params, X, Y, cost, [list(p) for p in grads])
