"""JSON results: the verdict records of a run plus run metadata, under a versioned schema."""
from __future__ import annotations

import json
import os
import platform

SCHEMA_VERSION = 1


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("backcheck", "jax", "numpy", "hypothesis"):
        try:
            from importlib.metadata import version
            out[mod] = version(mod)
        except Exception:
            out[mod] = None
    return out


def results_document(verdicts: list[dict], meta: dict | None = None) -> dict:
    return {"schema": "backcheck-results", "schema_version": SCHEMA_VERSION,
            "meta": {**(meta or {}), "versions": _versions()}, "verdicts": list(verdicts)}


def write_outputs(verdicts: list[dict], json_path=None, html_path=None, meta=None) -> dict:
    doc = results_document(verdicts, meta)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1)
    if html_path:
        from reports.html import write_html
        write_html(doc, html_path)
    return doc


def read_results(path) -> dict:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != "backcheck-results":
        raise ValueError(f"{path}: not a backcheck results file")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema version {doc.get('schema_version')}, this backcheck reads {SCHEMA_VERSION}")
    return doc
