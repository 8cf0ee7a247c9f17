"""The reports lead with the diagnosis: stored in the results JSON (and read back without being
recomputed), printed first in the terminal (each finding once, errors grouped with a count, every
verdict only with -v), at the top of the HTML report (absent from a passing one); and a
reproducer prints the wrong block entry by entry, layers 1-based.

The failing run is the student example's, made in-process on the fixed cases it declares (three
gradient checks): the records a pytest run collects, in a fraction of the time."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import properties.diagnosis
from implementations.numpy_mlp import NumpyMLP
from implementations.registry import load
from properties.checks import Case, reproduce, run_checks
from properties.fixed_cases import fixed_cases
from reference.spec import Layer, NetworkSpec
from reference.verdict import ERROR, FAILED, Verdict
from reports import html
from reports.demo import passing_verdicts
from reports.results import read_results, results_document, write_outputs
from reports.table import format_table

ROOT = Path(__file__).resolve().parent.parent
STUDENT = str(ROOT / "examples" / "buggy_student.py") + ":StudentMLP"
CHECKS = ("vs_jax", "vs_fd", "directional")


@lru_cache(maxsize=1)
def student_records() -> tuple:
    """The student's verdicts (as JSON records) on every fixed case it declares."""
    impl = load(STUDENT, isolate=False)
    out = []
    for case in fixed_cases().values():
        if impl.capabilities.supports(case.spec) is None:
            out += [v.to_json() for v in run_checks(impl, case, CHECKS, impl_ref=STUDENT)]
    return tuple(out)


@lru_cache(maxsize=1)
def student_doc() -> dict:
    """The results document of that run, its diagnosis made as at the end of a pytest session
    (reports.results.run_diagnoses: the source loaded in its isolation worker)."""
    return results_document(list(student_records()), {"implementations": [STUDENT], "hypothesis_profile": "ci"})


def text_of(page: str) -> str:
    import html as _h
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return _h.unescape(re.sub(r"<[^>]+>", " ", page))


def _forbid_recomputing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a report recomputed the diagnosis")
    monkeypatch.setattr(properties.diagnosis, "diagnose_run", refuse)
    monkeypatch.setattr(properties.diagnosis, "diagnose", refuse)


# --- the JSON --------------------------------------------------------------------------------

def test_the_diagnosis_is_stored_and_read_back_without_recomputing(tmp_path, monkeypatch):
    doc = student_doc()
    [d] = doc["diagnoses"]
    assert doc["diagnosis_errors"] == []
    assert d["implementation"] == "student-mlp" and (d["category"], d["activation"]) == ("activation derivative",
                                                                                         "sigmoid")
    assert d["headline"].startswith("student-mlp: activation derivative (sigmoid)") and d["findings"]
    assert str(ROOT / "examples" / "buggy_student.py") in d["reproducer"]   # absolute: runs from any folder
    write_outputs(doc["verdicts"], json_path=tmp_path / "r.json", meta=doc["meta"], diagnoses=doc["diagnoses"])
    _forbid_recomputing(monkeypatch)
    again = read_results(tmp_path / "r.json")
    assert again["diagnoses"] == json.loads(json.dumps(doc["diagnoses"]))
    assert again["verdicts"] == doc["verdicts"]
    # both renderings take the stored words
    assert d["headline"] in format_table(again)
    assert d["headline"] in text_of(html.render(again))


def test_a_diagnosis_that_raises_costs_one_line_not_the_results(tmp_path, monkeypatch):
    real = properties.diagnosis.diagnose_run

    def broken(sources, verdicts, isolate=True):
        if sources == ["broken:Source"]:
            raise ValueError("boom\nsecond line")
        return real(sources, verdicts, isolate)
    monkeypatch.setattr(properties.diagnosis, "diagnose_run", broken)
    records = list(student_records())
    doc = write_outputs(records, json_path=tmp_path / "r.json", html_path=tmp_path / "r.html",
                        meta={"implementations": ["broken:Source", STUDENT]})
    assert doc["diagnosis_errors"] == ["the diagnosis of broken:Source failed (ValueError: boom); the verdicts are "
                                       "reported without it"]
    assert [d["implementation"] for d in doc["diagnoses"]] == ["student-mlp"]   # the other source still diagnosed
    assert read_results(tmp_path / "r.json")["verdicts"] == records
    assert "the diagnosis of broken:Source failed (ValueError: boom)" in format_table(doc)
    assert "the diagnosis of broken:Source failed (ValueError: boom)" in text_of((tmp_path / "r.html").read_text())


def test_a_diagnosis_that_cannot_start_costs_one_line(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "properties.diagnosis", None)   # its import fails (as with JAX broken)
    doc = results_document(list(student_records()), {"implementations": [STUDENT]})
    assert doc["diagnoses"] == [] and len(doc["verdicts"]) == len(student_records())
    assert [p.split(" (")[0] for p in doc["diagnosis_errors"]] == ["the diagnosis of this run failed"]


def test_a_passing_run_and_a_run_naming_no_implementation_get_no_diagnosis():
    assert results_document(passing_verdicts(50, seed=1), {"implementations": ["builtin"]})["diagnoses"] == []
    assert results_document(list(student_records()), {})["diagnoses"] == []   # nothing to load: nothing made


def test_malformed_diagnoses_are_refused_in_one_line(tmp_path):
    for bad in ({"diagnoses": [{"implementation": 3}]}, {"diagnoses": {}}, {"diagnosis_errors": [1]}):
        path = tmp_path / "r.json"
        path.write_text(json.dumps({"schema": "backcheck-results", "schema_version": 1, "meta": {}, "verdicts": [],
                                    **bad}))
        with pytest.raises(ValueError) as e:
            read_results(path)
        assert "\n" not in str(e.value) and "diagnos" in str(e.value)


# --- the terminal ----------------------------------------------------------------------------

def _errors(impl="student-mlp"):
    return [Verdict("vs_jax", ERROR, impl, case=f"case {i}", message=f"implementation '{impl}' gradients(): returned "
                    f"NaN in layer 2 W[{i},1]", extra={"kind": "invalid"}).to_json() for i in range(3)] + [
        Verdict("load", ERROR, "other.py:IMPL", message="other.py: no such file").to_json()]


def test_the_terminal_leads_with_the_diagnosis_then_grouped_errors_then_the_table():
    doc = student_doc()
    [d] = doc["diagnoses"]
    out = format_table({**doc, "verdicts": doc["verdicts"] + _errors()})
    at = [out.index(s) for s in ("What is wrong:", d["headline"], d["findings"][0], d["findings"][-1],
                                 d["confidence"], "smallest reproducer (", d["reproducer"].splitlines()[-1],
                                 "Plug-in errors (4), by implementation and message:", "implementation       check")]
    assert at == sorted(at), out[:3000]
    # each finding once, though the student failed several checks on several cases
    failed = [v for v in doc["verdicts"] if v["status"] == FAILED]
    assert len({v["check"] for v in failed}) == 3 and len({v["case"] for v in failed}) >= 2
    for line in [d["headline"]] + d["findings"] + [d["confidence"]]:
        assert out.count(line) == 1, line
    # every verdict in full only with verbose
    assert "problem(s):" not in out and "[failed]" not in out
    assert f"Summed up above: {len(failed)} failed verdict(s) in the diagnosis and 4 error verdict(s)" in out
    verbose = format_table({**doc, "verdicts": doc["verdicts"] + _errors()}, verbose=True)
    assert verbose.count("[failed]") == len(failed) and f"{len(failed) + 4} problem(s):" in verbose


def test_errors_are_grouped_by_implementation_and_message_with_a_count():
    out = format_table(passing_verdicts(30, seed=2) + _errors())
    lines = [l for l in out.splitlines() if " × " in l]
    assert lines == ["  other.py:IMPL     1 × other.py: no such file",
                     "  student-mlp       3 × implementation 'student-mlp' gradients(): returned NaN in layer 2 W[0,1]"]
    assert out.index("Plug-in errors (4)") < out.index("implementation       check")
    assert "What is wrong:" not in out   # errors, no failure: nothing to diagnose was given


def test_failures_no_diagnosis_explains_are_still_listed_in_full():
    failed = [v for v in student_records() if v["status"] == FAILED]
    # a run that made its diagnoses and found none for the student says so
    out = format_table({"verdicts": list(student_records()), "diagnoses": []})
    assert f"student-mlp: {len(failed)} failed verdict(s) and no diagnosis: they are listed below." in out
    assert out.count("[failed]") == min(len(failed), 20)
    # bare records (a file from before diagnoses): every failure listed, no claim either way
    out = format_table(list(student_records()))
    assert "What is wrong" not in out and out.count("[failed]") == min(len(failed), 20)
    page = html.render({**results_document(list(student_records()), {}, diagnoses=[])})
    assert "student-mlp: " + f"{len(failed)} failed verdict(s) and no diagnosis." in text_of(page)
    old = {k: v for k, v in results_document(list(student_records()), {}).items() if not k.startswith("diagnos")}
    assert '<section id="diagnosis">' not in html.render(old)


def test_a_passing_run_prints_no_lead():
    out = format_table(results_document(passing_verdicts(50, seed=3), {"implementations": ["builtin"]}))
    assert out.startswith("implementation       check") and "What is wrong" not in out


# --- the HTML --------------------------------------------------------------------------------

def test_the_html_leads_with_the_diagnosis_of_a_failing_run():
    doc = student_doc()
    [d] = doc["diagnoses"]
    # the student's errors, as its diagnosis groups them when they are among its verdicts
    grouped = [{"implementation": "student-mlp", "message": _errors()[0]["message"], "count": 3, "kind": "invalid"}]
    page = html.render({**doc, "diagnoses": [{**d, "errors": grouped}], "verdicts": doc["verdicts"] + _errors()})
    sections = re.findall(r'<section id="([\w-]+)">', page)
    assert sections[0] == "diagnosis", sections
    top = re.search(r'<section id="diagnosis">.*?</section>', page, re.S).group(0)
    text = text_of(top)
    for s in [d["headline"], d["confidence"]] + d["findings"]:
        assert s in text, s
    assert f'<pre class="repro"><code>{html.esc(d["reproducer"])}</code></pre>' in top   # copyable
    assert "3 plug-in error(s)" in text   # the student's, counted once and pointed to
    # the details follow, collapsed: no failure card open, every verdict behind a summary
    assert "<details class=\"problem failed\" open>" not in page
    assert re.search(r'<details class="every"><summary>Show every verdict \(\d+\)', page)
    # errors grouped with a count, the message in a column of its own
    errors = re.search(r'<section id="errors">.*?</section>', page, re.S).group(0)
    assert re.search(r'<td class="name">student-mlp</td><td class="n bad" data-v="3">3</td><td class="message">'
                     r"implementation &#x27;student-mlp&#x27; gradients\(\): returned NaN in layer 2 W\[0,1\]</td>",
                     errors)
    assert '<details class="every"><summary>Every error verdict (4)' in errors


def test_a_passing_report_has_no_diagnosis_section():
    page = html.render(results_document(passing_verdicts(100, seed=5), {"implementations": ["builtin"]}))
    assert '<section id="diagnosis">' not in page and "What is wrong" not in page
    assert html.render(results_document(passing_verdicts(100, seed=5))).count('id="diagnosis"') == 0


def test_layers_are_1_based_in_the_terminal_and_the_report():
    doc = student_doc()
    for text in (format_table(doc, verbose=True), text_of(html.render(doc))):
        assert not re.search(r"\blayers? 0\b|direction\[0\]", text)
        assert "layer 1" in text


# --- reproducers -----------------------------------------------------------------------------

def _case(layers, loss="mse", n=3, seed=0):
    spec = NetworkSpec(n_in=3, layers=layers, loss=loss)
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal(ws), rng.standard_normal(bs)) for ws, bs in spec.shapes()]
    return Case.make(spec, params, rng.standard_normal((n, 3)), rng.standard_normal((n, spec.n_out)))


def test_a_reproducer_prints_the_wrong_block_entry_by_entry(tmp_path):
    doc = student_doc()
    [d] = doc["diagnoses"]
    ns: dict = {}
    exec(d["reproducer"].replace("print(reproduce", "v = (reproduce").replace(".explain())", ")"), ns)
    v = ns["v"]
    t = v.extra["table"]
    assert v.status == FAILED and t["block"].startswith(f"layer {v.worst.layer} dC/d{v.worst.param}")
    assert t["over"] >= 1 and len(t["rows"]) == t["entries"] - t["more"]
    worst = next(r for r in t["rows"] if r[0] == str(v.worst))
    assert worst[1:3] == list(v.worst_values) and worst[5] == "OVER"
    text = v.explain()
    assert text.startswith(v.summary())
    head = next(l for l in text.splitlines() if l.split()[:1] == ["entry"])
    assert head.split() == ["entry", "implementation", "reference", "rel", "error", "bound"]
    assert sum(" OVER" in l for l in text.splitlines()) == sum(r[5] == "OVER" for r in t["rows"])
    assert f"{t['over']} of {t['entries']} entries of {t['block']} over their bound" in text
    # the table stays JSON
    again = Verdict.from_json(json.loads(json.dumps(v.to_json())))
    assert again.extra["table"]["rows"] == json.loads(json.dumps(t["rows"]))


def test_a_large_block_lists_the_entries_furthest_over_their_bounds():
    case = _case((Layer(9, "sigmoid"), Layer(2, "identity")))   # layer 1 W: 27 entries, more than a table holds
    v = reproduce(STUDENT, "vs_jax", case)
    t = v.extra["table"]
    assert t["entries"] == 27 and len(t["rows"]) == 24 and t["more"] == 3
    assert "the 24 furthest over their bounds of 27" in v.explain()


def test_a_failure_in_the_deltas_shows_the_delta_block():
    v = reproduce("implementations.mutants:MissingActivationDerivative", "intermediates",
                  _case((Layer(4, "tanh"), Layer(2, "identity"))))
    assert v.status == FAILED and v.worst.param == "delta"
    assert v.extra["table"]["block"] == f"layer {v.worst.layer} dC/dz (3×{4 if v.worst.layer == 1 else 2})"
    assert all(r[0].startswith(f"layer {v.worst.layer} delta[") for r in v.extra["table"]["rows"])


class CostDoubled(NumpyMLP):
    """The cost twice over, the gradients right: a failure whose worst entry is the cost."""
    name = "cost-doubled"

    def gradients(self, spec, params, X, Y):
        cost, grads = super().gradients(spec, params, X, Y)
        return 2 * cost, grads


def test_a_wrong_cost_shows_the_cost_and_a_passing_check_no_table():
    case = _case((Layer(3, "tanh"), Layer(2, "identity")))
    v = reproduce(f"{__name__}:CostDoubled", "vs_jax", case)
    assert v.status == FAILED and v.worst.param == "cost"
    assert v.extra["table"]["block"] == "the cost" and [r[0] for r in v.extra["table"]["rows"]] == ["cost"]
    ok = reproduce("builtin", "vs_jax", case)
    assert ok.status == "passed" and "table" not in ok.extra and ok.explain() == ok.summary() + f"\n  network: {ok.case}"


def test_a_plain_pytest_run_with_failures_ends_with_the_diagnosis_in_words():
    """No --backcheck-json/--backcheck-report: the terminal summary still says what is wrong
    (and `backcheck check`, which prints its own table, turns that off)."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}
    base = [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "--tb=no", "--hypothesis-profile=ci-noshrink", "--impl=implementations.mutants:MissingOneOverN",
            "-k", "test_cost_and_gradients_vs_jax and mse"]
    proc = subprocess.run(base, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    section = proc.stdout.split("backcheck: what is wrong", 1)
    assert len(section) == 2, proc.stdout[-3000:]
    assert "batch reduction" in section[1] and "smallest reproducer" in section[1], section[1][:2000]
    off = subprocess.run(base + ["--backcheck-summary=off"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert off.returncode == 1 and "what is wrong" not in off.stdout
