"""Fails on import, as a plug-in with a missing dependency does."""
import backcheck_no_such_dependency  # noqa: F401

IMPL = None
