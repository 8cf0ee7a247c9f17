"""`backcheck check --network ...`: every gradient check on one given architecture, the same
results.json and report.html as the suite, a wrong entry found and located, undeclared work
listed and not checked, and every malformed network or file a one-line error naming the field."""
import json

import numpy as np
import pytest

from backcheck.cli import main
from properties import network_input, scale_checks
from reports.results import read_results

NET = ["--network", "6,5,3", "--activation", "tanh", "--loss", "softmax_ce", "--batch", "8"]


def run(tmp_path, *args):
    out = tmp_path / "out"
    code = main(["check", *NET, "--out", str(out), *args])
    return code, out


def verdicts(out) -> dict:
    return {v["check"]: v for v in read_results(out / "results.json")["verdicts"]}


def test_network_mode_runs_every_check_and_writes_the_same_outputs(tmp_path, capsys):
    code, out = run(tmp_path)
    assert code == 0, capsys.readouterr().out
    doc = read_results(out / "results.json")
    assert {v["check"] for v in doc["verdicts"]} == set(scale_checks.MODES["full"])
    assert all(v["status"] == "passed" for v in doc["verdicts"]), [v["message"] for v in doc["verdicts"]]
    assert doc["meta"]["network"] == "6 -> 5:tanh -> 3:identity | softmax_ce" and doc["meta"]["fd_mode"] == "full"
    vs = verdicts(out)
    assert vs["vs_fd"]["n_entries"] == 5 * 6 + 5 + 3 * 5 + 3 and "N=8" in vs["vs_fd"]["case"]
    assert vs["sampled_fd"]["extra"]["miss_probability"] == pytest.approx(1 - 16 / 30)   # 16 of layer 1's 30 weights
    assert "missed with probability" in vs["sampled_fd"]["message"]
    assert "caught with certainty" in vs["directional"]["message"]
    html = (out / "report.html").read_text()
    assert "sampled_fd" in html and "directional" in html
    assert "HTML report:" in capsys.readouterr().out


def test_a_single_wrong_entry_is_found_located_and_reproducible(tmp_path):
    code, out = run(tmp_path, "--impl", "implementations.mutants:SingleEntryOff")   # isolated, as a plug-in
    assert code == 1
    vs = verdicts(out)
    for check in ("vs_jax", "vs_fd", "richardson"):
        assert vs[check]["status"] == "failed" and vs[check]["worst"] == {"layer": 1, "param": "W", "index": [0, 0]}
    assert vs["vs_fd"]["reproducer"] == ("backcheck check " + " ".join(NET) + " --impl implementations.mutants:SingleEntryOff")


def test_fd_modes_and_check_selection(tmp_path):
    code, out = run(tmp_path, "--fd", "sampled", "--sample-fraction", "0.5", "--no-isolation")
    assert code == 0 and set(verdicts(out)) == set(scale_checks.MODES["sampled"])
    code, out = run(tmp_path, "--fd", "directional", "--directions", "3", "-k", "direction")
    assert code == 0 and set(verdicts(out)) == {"directional"}
    assert verdicts(out)["directional"]["n_entries"] == 3


def test_undeclared_work_is_listed_not_checked(tmp_path):
    code, out = run(tmp_path, "--impl", "tests/plugins/one_loss.py:IMPL", "--no-isolation")
    assert code == 0
    (v,) = read_results(out / "results.json")["verdicts"]
    assert v["status"] == "not_checkable" and v["check"] == "declared"
    assert v["message"].startswith("not declared:") and "softmax_ce" in v["message"]


def test_the_users_parameters_and_batch_come_from_the_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"W1": rng.standard_normal((5, 6)), "b1": rng.standard_normal(5), "W2": rng.standard_normal((3, 5)),
              "b2": rng.standard_normal(3), "X": rng.standard_normal((4, 6)), "Y": np.array([0, 2, 1, 2])}
    np.savez(tmp_path / "net.npz", **arrays)
    spec = network_input.spec_from_widths("6,5,3", "tanh", "identity", "softmax_ce", 0.0, "float64")
    case = network_input.case_from(spec, str(tmp_path / "net.npz"), 32, 0, "backcheck check")
    assert np.array_equal(case.params[0][0], arrays["W1"]) and np.array_equal(case.params[1][1], arrays["b2"])
    assert np.array_equal(case.X, arrays["X"]) and np.array_equal(case.Y, np.eye(3)[[0, 2, 1, 2]])
    code, out = run(tmp_path, "--params", str(tmp_path / "net.npz"), "--fd", "directional")
    assert code == 0 and "N=4" in verdicts(out)["vs_jax"]["case"]


def _spec_file(tmp_path, content) -> str:
    path = tmp_path / "net.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _npz(tmp_path, **arrays) -> str:
    np.savez(tmp_path / "p.npz", **arrays)
    return str(tmp_path / "p.npz")


GOOD = {"W1": np.zeros((5, 6)), "b1": np.zeros(5), "W2": np.zeros((3, 5)), "b2": np.zeros(3)}
MALFORMED = {
    "letters in widths": (lambda t: ["--network", "6,x,3"], "--network: expected positive integers"),
    "one width": (lambda t: ["--network", "6"], "--network:"),
    "zero width": (lambda t: ["--network", "6,0,3"], "--network:"),
    "unknown activation": (lambda t: ["--network", "6,5,3", "--activation", "rleu"], "--activation: unknown activation 'rleu'"),
    "unknown loss": (lambda t: ["--network", "6,5,3", "--loss", "xent"], "--loss: unknown loss 'xent'"),
    "both networks": (lambda t: ["--network", "6,5,3", "--network-spec", _spec_file(t, "{}")], "give one of them"),
    "bad fraction": (lambda t: ["--network", "6,5,3", "--sample-fraction", "0"], "--sample-fraction"),
    "spec not json": (lambda t: ["--network-spec", _spec_file(t, "{n_in: 3")], "net.json: not valid JSON"),
    "spec missing n_in": (lambda t: ["--network-spec", _spec_file(t, {"layers": [{"width": 2}]})], "missing field 'n_in'"),
    "spec misspelt field": (lambda t: ["--network-spec", _spec_file(t, {"n_in": 3, "layers": [{"widht": 2}]})],
                            "layers[0]: unknown field 'widht'"),
    "spec bad activation": (lambda t: ["--network-spec", _spec_file(t, {"n_in": 3, "layers": [{"width": 2, "activation": "x"}]})],
                            "layers[0] (layer 1).activation: unknown activation 'x'"),
    "spec no such file": (lambda t: ["--network-spec", str(t / "missing.json")], "missing.json: cannot read it"),
    "params wrong shape": (lambda t: ["--network", "6,5,3", "--params", _npz(t, **{**GOOD, "W1": np.zeros((6, 5))})],
                           "W1: shape (6, 5), expected (5, 6)"),
    "params unknown array": (lambda t: ["--network", "6,5,3", "--params", _npz(t, **GOOD, W3=np.zeros(2))],
                             "unknown array 'W3'"),
    "params missing one": (lambda t: ["--network", "6,5,3", "--params", _npz(t, W1=GOOD["W1"])], "missing b1"),
    "params X without Y": (lambda t: ["--network", "6,5,3", "--params", _npz(t, X=np.zeros((2, 6)))], "Y missing"),
    "params NaN": (lambda t: ["--network", "6,5,3", "--params", _npz(t, **{**GOOD, "b2": np.array([0, np.nan, 0])})],
                   "b2: contains NaN or inf"),
    "params bad labels": (lambda t: ["--network", "6,5,3", "--loss", "softmax_ce", "--params",
                                     _npz(t, X=np.zeros((2, 6)), Y=np.array([0, 7]))], "Y: labels"),
    "params wrong X width": (lambda t: ["--network", "6,5,3", "--params", _npz(t, X=np.zeros((2, 4)), Y=np.zeros((2, 3)))],
                             "X: shape (2, 4)"),
    "params not npz": (lambda t: ["--network", "6,5,3", "--params", _spec_file(t, "not a zip")], "not a NumPy .npz"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_network_or_file_is_one_line_naming_the_field(tmp_path, capsys, case):
    args, expected = MALFORMED[case]
    code = main(["check", *args(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("backcheck check: "), err
    assert expected in err, err
    assert not (tmp_path / "out" / "results.json").exists()
