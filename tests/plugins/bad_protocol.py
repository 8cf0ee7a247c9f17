"""Objects that do not satisfy the Implementation protocol."""
from implementations.protocol import Capabilities


class NoGradients:
    name = "no-gradients"
    capabilities = Capabilities()


class CapabilitiesAsDict:
    name = "caps-as-dict"
    capabilities = {"activations": ["tanh"]}

    def gradients(self, spec, params, X, Y):
        raise AssertionError("never called")


class DeclaresIntermediatesWithoutMethod:
    name = "no-intermediates"
    capabilities = Capabilities(intermediates=True)

    def gradients(self, spec, params, X, Y):
        raise AssertionError("never called")


class NoName:
    capabilities = Capabilities()

    def gradients(self, spec, params, X, Y):
        raise AssertionError("never called")
