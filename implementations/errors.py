"""Errors of an implementation under test, as opposed to wrong gradients.

A `PluginError` means the implementation could not be checked: it raised, hung, crashed its
worker, returned junk, mutated its inputs or answered two identical calls differently (beyond
the rounding a change of summation order explains: validate.disagreement). It is
the same type in-process (`validate.Validated`) and isolated (`isolation.IsolatedImplementation`),
its str() is one line naming the implementation, the call and the problem, and it becomes a
Verdict with status "error" (never "failed": a failure is reserved for a wrong gradient).
"""
from __future__ import annotations

# kind values: what went wrong, for reports and tests (the message says it in words)
LOAD, RAISED, TIMEOUT, CRASHED, INVALID, TOO_LARGE, MUTATED, NONDETERMINISTIC = (
    "load", "raised", "timeout", "crashed", "invalid", "too_large", "mutated", "nondeterministic")


class PluginError(Exception):
    """implementation 'x' gradients(): returned NaN in layer 2 W[0,1]"""

    def __init__(self, implementation: str, call: str, problem: str, kind: str = INVALID):
        super().__init__(implementation, call, problem, kind)
        self.implementation, self.call, self.problem, self.kind = implementation, call, problem, kind

    def __str__(self) -> str:
        return f"implementation {self.implementation!r} {self.call}(): {self.problem}"

    def verdict(self, check: str | None = None, spec=None, case: str = ""):
        """This error as a Verdict with status "error" (the record every result becomes)."""
        from reference.verdict import ERROR, Verdict
        return Verdict(check=check or self.call, status=ERROR, implementation=self.implementation,
                       spec=None if spec is None else spec.to_dict(),
                       case=case or ("" if spec is None else spec.describe()), message=str(self),
                       extra={"call": self.call, "kind": self.kind})


class LoadError(PluginError):
    """The implementation could not be found, imported, or does not satisfy the protocol."""

    def __init__(self, implementation: str, problem: str, kind: str = LOAD):
        super().__init__(implementation, "load", problem, kind)
        self.args = (implementation, problem, kind)  # as __init__ takes them: it unpickles (crosses the worker pipe)
