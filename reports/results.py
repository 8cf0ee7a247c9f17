"""JSON results: the verdict records of a run plus run metadata, under a versioned schema
(documented in reports/SCHEMA.md). The HTML report is rendered from this document alone."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform

from reports.aggregate import record

SCHEMA = "backcheck-results"
SCHEMA_VERSION = 1


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for mod in ("backcheck", "jax", "numpy", "hypothesis"):
        try:
            out[mod] = version(mod)
        except PackageNotFoundError:
            out[mod] = None
    return out


def run_meta(implementations, duration: float, step_curve: bool = True, workers=None, seed=None) -> dict:
    """The meta block of a pytest run (see SCHEMA.md). The step-size curve is computed here,
    once per run on the controller, so that `backcheck report` can redraw it from the JSON."""
    from hypothesis import settings
    profile = getattr(settings, "_current_profile", None)
    if seed is None:
        seed = "derandomized" if settings.default.derandomize else "random (not fixed)"
    meta = {"implementations": list(implementations), "duration": duration, "hypothesis_profile": profile,
            "seed": str(seed), "workers": int(workers) if isinstance(workers, int) else (workers or 0)}
    if step_curve:
        try:  # the results must be written even when this fails (e.g. JAX is broken): say why instead
            from reports.stepcurve import step_curve as compute
            meta["step_curve"] = compute()
        except Exception as e:
            meta["step_curve"] = {"error": f"{type(e).__name__}: {e}"}
    return meta


def results_document(verdicts: list, meta: dict | None = None) -> dict:
    """The document of a run; each verdict a dict or its JSON string (as pytest reports carry it)."""
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "meta": {"finished": finished, **(meta or {}), "versions": _versions()},
            "verdicts": [record(v) for v in verdicts]}


def write_outputs(verdicts: list[dict], json_path=None, html_path=None, meta=None) -> dict:
    doc = results_document(verdicts, meta)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    if html_path:
        from reports.html import write_html
        write_html(doc, html_path)
    return doc


def read_results(path) -> dict:
    """Load and check a results file; ValueError with a one-line message naming what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    validate(doc, str(path))
    return doc


def validate(doc, where: str = "results") -> None:
    from reference.verdict import STATUSES, Verdict
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{where}: not a backcheck results file (no \"schema\": \"{SCHEMA}\")")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{where}: schema version {doc.get('schema_version')!r}, this backcheck reads {SCHEMA_VERSION}")
    if not isinstance(doc.get("meta"), dict):
        raise ValueError(f"{where}: \"meta\" must be an object")
    if not isinstance(doc.get("verdicts"), list):
        raise ValueError(f"{where}: \"verdicts\" must be a list")
    for i, v in enumerate(doc["verdicts"]):
        if not isinstance(v, dict) or not isinstance(v.get("check"), str) or v.get("status") not in STATUSES:
            raise ValueError(f"{where}: verdicts[{i}] needs a string \"check\" and a \"status\" in {', '.join(STATUSES)}")
        try:
            Verdict.from_json(v)
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"{where}: verdicts[{i}] is malformed ({type(e).__name__}: {e})") from None
