"""The measured central-difference step curve behind the report's V-shaped plot."""
from __future__ import annotations

import json
import math

from reports import stepcurve


def _slope(points, h_a, h_b):
    """log-log slope of the median error between two steps of the curve."""
    med = {round(math.log10(h), 3): m for h, m, _ in points}
    a, b = round(math.log10(h_a), 3), round(math.log10(h_b), 3)
    return (math.log10(med[a]) - math.log10(med[b])) / (a - b)


def test_the_curve_is_v_shaped_with_the_checkers_step_near_its_bottom():
    c = stepcurve.step_curve()
    assert json.loads(json.dumps(c)) == c, "the curve must be plain JSON (it is stored in the results' meta)"
    pts = c["points"]
    assert [p[0] for p in pts] == sorted((p[0] for p in pts), reverse=True) and len(pts) == 25
    assert c["n_compared"] == c["n_params"] == 26
    # truncation arm: error ~ h^2; rounding arm: error ~ 1/h (noisy, so a looser window)
    assert 1.8 < _slope(pts, 1e-1, 1e-3) < 2.2
    assert -1.5 < _slope(pts, 1e-8, 1e-12) < -0.6
    best = min(p[1] for p in pts)
    assert best < 1e-9
    assert min(p[1] for p in pts if p[0] >= 1e-2) > 1e4 * best
    assert min(p[1] for p in pts if p[0] <= 1e-12) > 1e4 * best
    # the step the checker takes sits within a decade of the measured best, where the error is near its minimum
    assert abs(math.log10(c["chosen_step"]) - math.log10(c["best_step"])) < 1
    near = min(pts, key=lambda p: abs(math.log10(p[0]) - math.log10(c["chosen_step"])))
    assert near[1] < 10 * best
    assert all(w >= m for _, m, w in pts)


def test_a_failing_computation_becomes_an_error_entry_in_the_run_meta(monkeypatch):
    from reports.results import run_meta

    def boom():
        raise RuntimeError("no JAX today")
    monkeypatch.setattr(stepcurve, "step_curve", boom)
    meta = run_meta(["builtin"], 1.0)
    assert meta["step_curve"] == {"error": "RuntimeError: no JAX today"}
    assert "step_curve" not in run_meta(["builtin"], 1.0, step_curve=False)
