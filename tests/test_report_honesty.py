"""Reports that do not mislead: a passing run shows no red and no error figure from entries no
check decided (a relative error is at most 1, so "1e+00" against a bound of 1e22 means nothing);
every figure is error / bound of a decided entry; the share of entries decided is shown per check;
undeclared work is listed once. And a real failure is still red."""
from __future__ import annotations

import json
import re

from reference.verdict import FAILED, NOT_CHECKABLE, PASSED, Entry, Verdict
from reports import aggregate, html
from reports.assets import CSS
from reports.demo import passing_verdicts
from reports.results import results_document
from reports.table import format_table

SPEC = {"n_in": 3, "layers": [{"width": 4, "activation": "tanh"}, {"width": 1, "activation": "identity"}],
        "loss": "mse", "l2": 0.0, "dtype": "float64"}
MEANINGLESS_ONE = re.compile(r"1(?:\.0+)?e\+00")   # 1e+00, 1.0e+00, 1.00e+00


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def is_red(hex_colour: str) -> bool:
    """Red or orange-red (the failure and error colours), not orange, pink or amber."""
    r, g, b = _rgb(hex_colour)
    return r >= 0x90 and r > 2 * g and r > 2 * b


def red_rules(css: str) -> list[set]:
    """The class sets (of the selected element) of every CSS rule that paints something red."""
    out = []
    for selectors, decls in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        if "var(--fail)" in decls or "var(--err)" in decls or any(map(is_red, re.findall(r"#[0-9a-fA-F]{6}", decls))):
            for sel in selectors.split(","):
                classes = set(re.findall(r"\.([\w-]+)", re.split(r"[\s>+~]+", sel.strip())[-1]))
                if classes:
                    out.append(classes)
    return out


def red_in(page: str) -> list[str]:
    """Everything red on the page: inline colours (SVG fills, strokes) and elements a red CSS rule selects."""
    body = re.sub(r"<style\b.*?</style>", "", page, flags=re.S)
    found = [c for c in re.findall(r"#[0-9a-fA-F]{6}\b", body) if is_red(c)]
    elements = [set(c.split()) for c in re.findall(r'class="([^"]*)"', body)]
    found += [".".join(sorted(rule)) for rule in red_rules(CSS) if any(rule <= e for e in elements)]
    return found


def text_of(page: str) -> str:
    import html as _h
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return _h.unescape(re.sub(r"<[^>]+>", " ", page))


def _failure() -> Verdict:
    return Verdict("vs_jax", FAILED, "numpy-builtin", SPEC, "tanh x mse", max_error=0.4, median_error=1e-3,
                   bound=1e-10, worst=Entry(1, "W", (0, 1)), worst_values=(0.5, 0.21), worst_error=0.4, n_entries=21,
                   message="1 of 21 entries over their bound")


def test_the_red_detector_sees_the_report_s_failure_colours():
    """The honesty checks below are worth something only if they can fail."""
    assert is_red("#c62828") and is_red("#d9480f") and not is_red("#f2a65a") and not is_red("#e07b00")
    rules = red_rules(CSS)
    assert {"bad"} in rules and {"s-failed"} in rules and {"n3"} in rules and {"top", "v-FAILED"} in rules
    assert red_in('<span class="mono bad">x</span>') == ["bad"]
    assert red_in('<svg><rect fill="#c62828"/></svg>') == ["#c62828"]
    assert red_in('<header class="top v-PASSED"></header><span class="badge s-passed"></span>') == []


def test_a_passing_run_with_meaningless_errors_shows_no_red_and_no_1e00():
    verdicts = passing_verdicts(400, seed=4)
    vs = [Verdict.from_json(v) for v in verdicts]
    # the traps are really there: not-checkable verdicts with "error" 1 against huge bounds, undecided-heavy ones
    traps = [v for v in vs if v.status == NOT_CHECKABLE and aggregate.num(v.max_error) == 1.0]
    assert traps and all(aggregate.num(v.bound) >= 1e7 for v in traps)
    assert any(v.status == PASSED and v.n_undecided > aggregate.n_decided(v) for v in vs)
    page = html.render(results_document(verdicts))
    assert red_in(page) == []
    assert not MEANINGLESS_ONE.search(page), MEANINGLESS_ONE.search(page)
    assert 'class="overall">PASSED<' in page
    # not-checkable rows give their reason, never the error and bound that mean nothing
    rows = re.search(r'<table id="all-verdicts".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    for row in re.findall(r"<tr>.*?</tr>", rows):
        if "s-not_checkable" in row:
            assert 'class="why"' in row and "1.80e+07" not in row and "3.60e+22" not in row, row


def test_the_report_shows_the_decided_share_of_entries_per_check():
    vs = [Verdict("vs_fd", PASSED, "impl", SPEC, max_error=1e-8, worst_error=1e-8, bound=1e-6, n_entries=100,
                  n_kinks=2, n_undecided=3) for _ in range(9)]
    vs.append(Verdict("vs_fd", NOT_CHECKABLE, "impl", SPEC, n_entries=100, n_kinks=40, n_undecided=60,
                      max_error=1.0, worst_error=1.0, bound=3.6e22, message="every entry is a kink or undecided"))
    stats = aggregate.check_stats(vs)["vs_fd"]
    assert stats.describe() == ("9 passed, 0 failed, 1 not checkable (10.0%); 85.5% of 1,000 entries decided, "
                                "5.8% kinks, 8.7% undecided")
    assert aggregate.ratio_text(stats.worst) == "0.01"  # error / bound of a decided entry, not the 1.0
    page = html.render(results_document([v.to_json() for v in vs]))
    row = re.search(r'<tr title="9 passed[^"]*"><td class="name">vs_fd<div class="impl">impl</div></td>.*?</tr>', page).group(0)
    assert "85.5%" in row and "5.8%" in row and "8.7%" in row and "1 (10.0%)" in row
    assert "0.01" in text_of(row) and not MEANINGLESS_ONE.search(row)
    assert "every entry is a kink or undecided" in text_of(page)  # the reason, in the collapsed list


def test_percentages_are_never_rounded_to_nothing_or_everything():
    assert [aggregate.percent(n, 10_000) for n in (0, 1, 5, 9_999, 10_000)] == ["0%", "<0.1%", "<0.1%", ">99.9%", "100%"]
    assert aggregate.percent(3, 0) == "-"


def test_terminal_table_shows_decided_share_and_error_over_bound_never_a_meaningless_one():
    verdicts = passing_verdicts(400, seed=4)
    out = format_table(verdicts)
    assert not MEANINGLESS_ONE.search(out), MEANINGLESS_ONE.search(out)
    head, *rows = out.split("\n\n")[0].splitlines()
    for col in ("not checkable", "entries", "decided", "kinks", "undecided", "err/bound"):
        assert col in head
    vs_fd = next(r for r in rows if " vs_fd " in r)
    stats = aggregate.check_stats([Verdict.from_json(v) for v in verdicts],
                                  key=lambda v: (v.implementation, v.check))[("numpy-builtin", "vs_fd")]
    assert aggregate.percent(stats.decided, stats.entries) in vs_fd.split()
    assert vs_fd.split()[-1] == aggregate.ratio_text(stats.worst) and stats.worst <= 1
    assert "max rel err" not in out


def test_not_declared_work_is_listed_once_grouped_with_a_count():
    verdicts = passing_verdicts(200, seed=1)
    out = format_table(verdicts)
    assert out.count("Not checked (not declared by the implementation):") == 1
    assert "      7 x not declared: output activations other than identity (numpy-builtin)" in out
    assert out.count("not declared: output activations other than identity") == 1
    # not a row of the per-check summary: "declared" is no check that ran
    assert not any(line.split()[1:2] == ["declared"] for line in out.splitlines() if line.startswith("numpy-builtin"))
    page = html.render(results_document(verdicts))
    text = text_of(page)
    assert '<section id="unchecked"><h2>Not checked (not declared by the implementation)</h2>' in page
    assert text.count("not declared: output activations other than identity") == 1
    assert re.search(r"not declared: output activations other than identity</td><td>numpy-builtin</td>"
                     r'<td class="n" data-v="7">7</td>', page)
    failures = re.search(r'<section id="failures">.*?</section>', page, re.S).group(0)
    assert "not declared" not in failures


def test_a_real_failure_is_still_red_and_over_its_bound():
    verdicts = passing_verdicts(200, seed=2) + [_failure().to_json()]
    page = html.render(results_document(verdicts))
    red = red_in(page)
    assert "bad" in red and "s-failed" in red and "top.v-FAILED" in red and "n3" in red  # counts, badge, header, cells
    assert "#c62828" in red                                                            # the heatmap cell
    assert 'class="overall">FAILED<' in page
    out = format_table(verdicts)
    row = next(r for r in out.splitlines() if r.startswith("numpy-builtin") and " vs_jax " in r)
    assert row.split()[-1] == "4e+09" and row.split()[4] == "1"  # error / bound 0.4 / 1e-10, one failed


def test_verdicts_carried_as_json_strings_are_read_like_dicts():
    """pytest reports may carry a verdict as its JSON string (user_properties survive xdist)."""
    records = [_failure().to_json(), Verdict("vs_fd", PASSED, "numpy-builtin", SPEC, max_error=1e-9, worst_error=1e-9,
                                              bound=1e-6, n_entries=21).to_json()]
    as_strings = [json.dumps(r) for r in records]
    assert format_table(as_strings) == format_table(records)
    assert results_document(as_strings)["verdicts"] == records
