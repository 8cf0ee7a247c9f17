"""Deliberately wrong perceptrons: each one rule of seed 003's perceptron changed.

tests/test_perceptron_mutants.py shows that the perceptron properties catch every one of these
(with the `ci` profile) and never the reference. Each is a full implementation (gradients are
the built-in's), so `--impl implementations.perceptron_mutants:SkipsEveryOtherUpdate` works.
"""
from __future__ import annotations


from implementations.numpy_mlp import NumpyMLP
from reference.perceptron import run_rule, seed_mistake, seed_update


class _PerceptronMutant(NumpyMLP):
    bug = ""
    is_mistake = staticmethod(seed_mistake)
    update = staticmethod(seed_update)

    @property
    def name(self):
        return f"mutant:{type(self).__name__}"

    def perceptron(self, X, y, max_epochs):
        return run_rule(X, y, max_epochs, is_mistake=self.is_mistake, update=self.update)


class SkipsEveryOtherUpdate(_PerceptronMutant):
    bug = "counts every mistake but adds y x only on every other one"

    @staticmethod
    def update(w, x, y, k):
        return w + y * x if k % 2 == 0 else w


class StrictMistakeTest(_PerceptronMutant):
    bug = "mistake test y (w . x) < 0 instead of <= 0: at w = 0 nothing is a mistake"

    @staticmethod
    def is_mistake(scores):
        return scores < 0


class BiasNeverUpdated(_PerceptronMutant):
    bug = "the bias (weight of the augmented constant last column) is never updated"

    @staticmethod
    def update(w, x, y, k):
        out = w + y * x
        out[-1] = w[-1]
        return out


class AbsoluteThreshold(_PerceptronMutant):
    bug = "mistake test y (w . x) <= 1e-3: an absolute threshold, not invariant under scaling x"

    @staticmethod
    def is_mistake(scores):
        return scores <= 1e-3


MUTANTS = {cls.__name__: cls for cls in _PerceptronMutant.__subclasses__()}


def get(name: str) -> NumpyMLP:
    return MUTANTS[name]()
