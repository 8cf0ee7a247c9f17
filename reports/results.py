"""JSON results: the verdict records of a run, its diagnoses and run metadata, under a versioned
schema (documented in reports/SCHEMA.md). The terminal lead and the HTML report are rendered from
this document alone: `backcheck report` recomputes nothing."""
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


def hypothesis_profile() -> dict:
    """The Hypothesis profile this process runs under: {"name", "derandomize"} (an xdist worker
    sends it to the controller, which does not import Hypothesis)."""
    from hypothesis import settings
    return {"name": getattr(settings, "_current_profile", None), "derandomize": bool(settings.default.derandomize)}


def run_meta(implementations, duration: float, step_curve: bool | dict = True, workers=None, seed=None,
             profile: dict | None = None) -> dict:
    """The meta block of a pytest run (see SCHEMA.md). The step-size curve (`step_curve`: True,
    compute it here; a dict, one an xdist worker computed) is stored once per run, so that
    `backcheck report` can redraw it from the JSON. `profile`: hypothesis_profile() of the
    processes that ran the tests (this one's when not given)."""
    profile = profile or hypothesis_profile()
    if seed is None:
        seed = "derandomized" if profile["derandomize"] else "random (not fixed)"
    profile = profile["name"]
    meta = {"implementations": list(implementations), "duration": duration, "hypothesis_profile": profile,
            "seed": str(seed), "workers": int(workers) if isinstance(workers, int) else (workers or 0)}
    if isinstance(step_curve, dict):
        meta["step_curve"] = step_curve
    elif step_curve:
        try:  # the results must be written even when this fails (e.g. JAX is broken): say why instead
            from reports.stepcurve import step_curve as compute
            meta["step_curve"] = compute()
        except Exception as e:
            meta["step_curve"] = {"error": f"{type(e).__name__}: {e}"}
    return meta


def run_diagnoses(records: list[dict], sources) -> tuple[list[dict], list[str]]:
    """The diagnoses of a run (properties.diagnosis.diagnose_run: each --impl source with something
    wrong, loaded as the run loads it) as JSON, and one line per source whose diagnosis itself
    failed: a broken diagnosis must never cost the run its results, only its own words."""
    from reference.verdict import ERROR, FAILED, Verdict
    if not sources or not any(isinstance(r, dict) and r.get("status") in (FAILED, ERROR) for r in records):
        return [], []   # nothing to explain: not even the import (it loads JAX)
    out, problems = [], []

    def failed(what, e):
        why = (str(e).strip().splitlines() or [""])[0]
        problems.append(f"the diagnosis {what} failed ({type(e).__name__}{': ' + why if why else ''}); "
                        "the verdicts are reported without it")
    try:   # anything at all, here and below: the verdicts are written regardless
        from properties.diagnosis import diagnose_run
        vs = [Verdict.from_json(r) for r in records]
    except Exception as e:
        failed("of this run", e)
        return out, problems
    for source in sources:   # one at a time, so that a failure names its source and spares the others
        try:
            out += [d.to_json() for d in diagnose_run([source], vs)]
        except Exception as e:
            failed(f"of {source}", e)
    return out, problems


def results_document(verdicts: list, meta: dict | None = None, diagnoses: list | None = None) -> dict:
    """The document of a run; each verdict a dict or its JSON string (as pytest reports carry it).
    The diagnoses are made here from meta["implementations"] (run_diagnoses) unless given (as
    Diagnosis objects or their JSON)."""
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    records = [record(v) for v in verdicts]
    problems = []
    if diagnoses is None:
        diagnoses, problems = run_diagnoses(records, (meta or {}).get("implementations") or [])
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "meta": {"finished": finished, **(meta or {}), "versions": _versions()},
            "diagnoses": [d if isinstance(d, dict) else d.to_json() for d in diagnoses],
            "diagnosis_errors": problems, "verdicts": records}


def write_outputs(verdicts: list[dict], json_path=None, html_path=None, meta=None, diagnoses=None) -> dict:
    doc = results_document(verdicts, meta, diagnoses)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as f:
            f.write(_dumps(doc))
    if html_path:
        from reports.html import write_html
        write_html(doc, html_path)
    return doc


def _dumps(doc: dict) -> str:
    """The results file's text: the header indented, then one verdict per line. json.dump with
    an indent runs the pure-Python encoder (0.2-0.9 s for the main job's 2556 verdicts, at the end
    of every run); each line here is one call of the C encoder (0.06 s), and a verdict still
    reads on one line, greppable."""
    head = json.dumps({k: v for k, v in doc.items() if k != "verdicts"}, indent=1)
    lines = [json.dumps(v) for v in doc["verdicts"]]
    return head[:-2] + ',\n "verdicts": [' + ("\n  " + ",\n  ".join(lines) + "\n ]" if lines else "]") + "\n}\n"


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
    # optional (absent from files written before diagnoses): the reports render what they find
    diagnoses = doc.get("diagnoses", [])
    if not isinstance(diagnoses, list) or not all(
            isinstance(d, dict) and isinstance(d.get("implementation"), str) and isinstance(d.get("headline"), str)
            for d in diagnoses):
        raise ValueError(f"{where}: \"diagnoses\" must be a list of objects with a string \"implementation\" and "
                         "\"headline\"")
    problems = doc.get("diagnosis_errors", [])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise ValueError(f"{where}: \"diagnosis_errors\" must be a list of strings")
    for i, v in enumerate(doc["verdicts"]):
        if not isinstance(v, dict) or not isinstance(v.get("check"), str) or v.get("status") not in STATUSES:
            raise ValueError(f"{where}: verdicts[{i}] needs a string \"check\" and a \"status\" in {', '.join(STATUSES)}")
        try:
            Verdict.from_json(v)
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"{where}: verdicts[{i}] is malformed ({type(e).__name__}: {e})") from None
