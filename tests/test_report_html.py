"""The HTML report and the JSON results, without a browser: content, escaping, caps, plots,
the results schema checks and `backcheck report`."""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

from backcheck.cli import main as cli_main
from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Entry, Verdict
from reports import html, plots
from reports.assets import JS
from reports.demo import synthetic_verdicts
from reports.results import read_results, results_document, write_outputs

XSS = "<script>alert(1)</script>"
SPEC = {"n_in": 3, "layers": [{"width": 4, "activation": "sigmoid"}, {"width": 1, "activation": "identity"}],
        "loss": "mse", "l2": 0.0, "dtype": "float64"}
CURVE = {"network": "3 -> 4:tanh -> 2:identity | mse", "dtype": "float64", "n_params": 26, "n_compared": 26,
         "points": [[10.0 ** -e, 10.0 ** -(abs(e - 5) + 5), 10.0 ** -(abs(e - 5) + 3)] for e in range(1, 14)],
         "chosen_step": 4.8e-6, "best_step": 1e-5}


def failing(**kw) -> Verdict:
    base = dict(check="vs_jax", status=FAILED, implementation="mutant:SignFlip", spec=SPEC,
                case="tanh x mse: 3 -> 4:sigmoid -> 1:identity | mse, N=5", max_error=1.0, median_error=0.9,
                bound=1e-10, worst=Entry(1, "W", (2, 0)), worst_values=(0.6905301770755717, -0.6905301771213441),
                worst_error=1.0, n_entries=21, reproducer="import numpy as np\nprint(reproduce('x', 'vs_jax', case))")
    base.update(kw)
    return Verdict(**base)


def doc_of(verdicts, **meta) -> dict:
    return results_document([v.to_json() if isinstance(v, Verdict) else v for v in verdicts],
                            {"hypothesis_profile": "ci", "seed": "derandomized", "duration": 3.5, **meta})


def text_of(page: str) -> str:
    """Visible text, roughly: tags dropped, entities decoded (script and style removed)."""
    import html as _h
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return _h.unescape(re.sub(r"<[^>]+>", " ", page))


def test_report_shows_verdicts_failures_with_values_bound_and_reproducer():
    v = failing()
    page = html.render(doc_of([v, Verdict("vs_jax", PASSED, "numpy-builtin", SPEC, max_error=3e-16, bound=1e-10)]))
    text = text_of(page)
    assert "FAILED" in text and "PASSED" in text
    assert "layer 1 W[2,0]" in text
    assert "0.6905301770755717" in text and "-0.6905301771213441" in text  # both values, all digits
    assert "1.00e-10" in text                                             # the bound
    assert re.search(r'<pre class="repro"><code>import numpy as np\nprint\(reproduce\(&#x27;x&#x27;', page)
    assert "derandomized" in text and "ci" in text                          # run metadata
    for name in ("backcheck", "jax", "numpy", "hypothesis"):
        assert name in text


def test_every_plugin_string_is_escaped():
    evil = dict(implementation=XSS, case=f"case {XSS}", message=f"msg {XSS}", reproducer=f"repro {XSS}",
                extra={"test": f"t[{XSS}]"})
    spec = {**SPEC, "layers": [{"width": 4, "activation": XSS}, {"width": 1, "activation": "identity"}], "loss": XSS}
    verdicts = [failing(**evil, spec=spec), Verdict("load", ERROR, **evil), Verdict(XSS, PASSED, XSS, spec, max_error=1e-9,
                worst=Entry(1, XSS, (0,))),
                Verdict("perceptron_bound", FAILED, XSS, case=XSS, extra={"k": 10, "bound": 5.0, "ratio": 2.0})]
    page = html.render(doc_of(verdicts))
    assert page.count("<script") == 1, "only our own script element"
    assert "<img" not in page and "alert(1)</script>" not in page.replace("</script></body>", "")
    assert text_of(page).count(XSS) >= 8  # shown as text everywhere it occurs


def test_report_is_self_contained():
    page = html.render(doc_of(synthetic_verdicts(400), step_curve=CURVE))
    assert not re.search(r"(?i)https?://", page), "no URL of any kind"
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(r.startswith("#") or r == "data:," for r in refs), refs
    assert "@import" not in page and "url(" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    assert f"script-src &#x27;sha256-{digest}&#x27;" in csp and "default-src &#x27;none&#x27;" in csp


def test_sections_and_plots_present():
    perceptron = [Verdict("perceptron_bound", PASSED, "numpy-builtin", case=f"n={k}",
                          extra={"k": k, "bound": 4.0 * k + 1, "ratio": k / (4.0 * k + 1)}) for k in range(1, 30)]
    page = html.render(doc_of(synthetic_verdicts(300) + [v.to_json() for v in perceptron], step_curve=CURVE))
    for sid in ("summary", "run", "failures", "errors", "plots", "accuracy", "verdicts"):
        assert f'<section id="{sid}">' in page, sid
    assert page.count('<svg viewBox') == 4
    assert "<h4>float64 networks</h4>" in page


def test_long_lists_are_capped_with_a_summary_line_and_all_kept_in_json(tmp_path):
    vs = synthetic_verdicts(10_000, seed=5)
    doc = write_outputs(vs, json_path=tmp_path / "r.json", html_path=tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    rows = re.search(r'<table id="all-verdicts".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert rows.count("<tr>") == html.MAX_ROWS
    assert f"Showing {html.MAX_ROWS} of 10,000 verdicts" in page
    assert page.count('<details class="problem') == html.MAX_PROBLEMS
    assert len(json.loads((tmp_path / "r.json").read_text())["verdicts"]) == 10_000 == len(doc["verdicts"])
    assert (tmp_path / "r.html").stat().st_size < 5_000_000


def test_failures_come_worst_first_one_per_implementation_and_check_first():
    vs = [failing(max_error=1e-3, worst_error=1e-3), failing(max_error=0.5, worst_error=0.5),
          failing(check="vs_fd", max_error=1e-5, worst_error=1e-5, bound=1e-6),
          Verdict("reference_agreement", REFERENCE_MISMATCH, "reference", SPEC, max_error=1e-4, bound=1e-6,
                  worst_error=1e-4)]
    page = html.render(doc_of(vs))
    order = re.findall(r'<details class="problem [^"]*"[^>]*><summary>.*?<strong>([^<]+)</strong>.*?error '
                       r'<span class="mono bad">([^<]+)</span>', page)
    # failures before reference mismatches, each group's worst before the rest
    assert order == [("vs_jax", "5.00e-01"), ("vs_fd", "1.00e-05"), ("reference_agreement", "1.00e-04"),
                     ("vs_jax", "1.00e-03")]


def test_summary_error_over_bound_comes_from_a_checked_verdict():
    """A not-checkable verdict is the most severe of a passing run but has no error or bound:
    the summary shows the checked verdict nearest its bound instead of a dash."""
    near = Verdict("vs_fd", PASSED, "numpy-builtin", SPEC, max_error=4e-9, worst_error=4e-9, bound=1e-8)
    far = Verdict("vs_jax", PASSED, "numpy-builtin", SPEC, max_error=3e-16, worst_error=3e-16, bound=1e-10)
    unchecked = Verdict("directional", NOT_CHECKABLE, "numpy-builtin", SPEC, message="on a kink")
    only_unchecked = Verdict("vs_jax", NOT_CHECKABLE, "other", SPEC, message="loss not declared")
    page = html.render(doc_of([far, unchecked, near, only_unchecked]))
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr><td class="name">([^<]+)</td>.*?</tr>', page)}
    assert "4.0e-09 / 1e-08" in text_of(rows["numpy-builtin"]), rows["numpy-builtin"]
    assert "–" in text_of(rows["other"])


def test_error_distribution_bins_each_verdict_at_its_error():
    svg = plots.error_distribution([Verdict("vs_fd", PASSED, max_error=3e-9), Verdict("vs_fd", FAILED, max_error=0.2),
                                    Verdict("vs_jax", PASSED, max_error=0.0)])
    tips = re.findall(r"<title>([^<]*)</title>", svg)
    assert "vs_fd: 1 verdicts with worst error 1e-9 – 1e-8.5" in tips
    assert "vs_fd: 1 verdicts with worst error 1e-1 – 1e-0.5 (1 failed/errors)" in tips
    assert "vs_jax: 1 verdicts with worst error ≤ 1e-17 (or exactly 0)" in tips
    for edge in ("1e-7", "1e-4", "1e-2"):
        assert f">{edge}</text>" in svg
    assert "No verdict" in plots.error_distribution([Verdict("load", ERROR)])


def test_heatmap_puts_error_over_bound_at_the_worst_entrys_layer_and_activation():
    """Error / bound, so float32 and float64 checks share one scale; the nearest verdict per cell;
    a verdict that decided nothing (no bound to be near) is not placed."""
    vs = [failing(max_error=0.25, worst_error=0.25),
          Verdict("vs_fd", PASSED, spec=SPEC, max_error=2e-9, worst_error=2e-9, bound=1e-6, worst=Entry(2, "b", (0,))),
          Verdict("vs_fd", PASSED, spec={**SPEC, "dtype": "float32"}, max_error=1e-3, worst_error=1e-3, bound=1e-2,
                  worst=Entry(2, "b", (0,))),
          Verdict("vs_fd", NOT_CHECKABLE, spec=SPEC, max_error=1.0, worst_error=1.0, bound=3e22, worst=Entry(1, "W", (0, 0)),
                  n_entries=4, n_undecided=4)]
    svg = plots.layer_heatmap(vs)
    tips = re.findall(r"<title>([^<]*)</title>", svg)
    assert ("layer 1, sigmoid: error / bound 2.5e+09 over 1 verdicts (nearest: vs_jax, relative error 2.5e-01 "
            "against bound 1.0e-10), 1 failed") in tips
    assert ("layer 2, identity: error / bound 0.1 over 2 verdicts (nearest: vs_fd, relative error 1.0e-03 against "
            "bound 1.0e-02)") in tips
    assert f'fill="{plots.BAD_COLOUR}"' in svg  # the failure, and only it, is red
    assert f'fill="{plots.BAD_COLOUR}"' not in plots.layer_heatmap(vs[1:])


def test_step_curve_plot_marks_the_chosen_step():
    svg = plots.step_curve(CURVE)
    assert "checker&#x27;s step 4.8e-06" in svg and "rounding" in svg and "truncation" in svg
    assert svg.count("<circle") == len(CURVE["points"])
    assert "could not be computed: boom" in plots.step_curve({"error": "boom"})
    assert "--backcheck-no-step-curve" in plots.step_curve(None)


def test_perceptron_points_under_the_bound_are_drawn_under_the_diagonal():
    vs = [Verdict("perceptron_bound", PASSED, extra={"k": k, "bound": b}) for k, b in ((3, 10.0), (50, 60.0), (0, 8.0))]
    vs.append(Verdict("perceptron_bound", FAILED, extra={"k": 40, "bound": 20.0}))
    svg = plots.perceptron_bound(vs)
    diag = re.search(r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" stroke="#555" stroke-width="1.2"', svg)
    x1, y1, x2, y2 = map(float, diag.groups())
    points = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="[\d.]+" fill="(#\w+)"[^>]*><title>', svg)
    assert len(points) == 4
    for cx, cy, fill in points:
        on_diagonal = y1 + (float(cx) - x1) * (y2 - y1) / (x2 - x1)
        under = float(cy) > on_diagonal  # SVG y grows downwards
        assert under == (fill == plots.OK_COLOUR), (cx, cy, fill)
    assert "1 above the bound" in svg


def test_read_results_gives_one_line_errors(tmp_path):
    cases = {"missing.json": None, "bad.json": "{not json", "other.json": json.dumps({"schema": "x"}),
             "version.json": json.dumps({"schema": "backcheck-results", "schema_version": 99, "meta": {}, "verdicts": []}),
             "verdict.json": json.dumps({"schema": "backcheck-results", "schema_version": 1, "meta": {},
                                         "verdicts": [{"check": "vs_jax", "status": "bogus"}]}),
             "field.json": json.dumps({"schema": "backcheck-results", "schema_version": 1, "meta": {},
                                       "verdicts": [{"check": "vs_jax", "status": "passed", "worst": 3}]})}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_text(content)
        with pytest.raises(ValueError) as e:
            read_results(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value), str(e.value)


def test_cli_report_regenerates_the_same_html_from_json(tmp_path, capsys):
    vs = synthetic_verdicts(200, seed=2)
    write_outputs(vs, json_path=tmp_path / "results.json", html_path=tmp_path / "a.html",
                  meta={"step_curve": CURVE, "seed": "derandomized"})
    assert cli_main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "sub" / "b.html")]) == 0
    assert (tmp_path / "a.html").read_text() == (tmp_path / "sub" / "b.html").read_text()
    assert str(tmp_path / "sub" / "b.html") in capsys.readouterr().out


def test_cli_report_on_a_missing_or_invalid_file_prints_one_line_and_exits_2(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("[1, 2")
    for path in (tmp_path / "nope.json", tmp_path / "bad.json"):
        assert cli_main(["report", str(path), "-o", str(tmp_path / "x.html")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and path.name in err, err
    assert not (tmp_path / "x.html").exists()
