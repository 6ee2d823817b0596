"""Prior sensitivity: power-scaling on a conjugate model with a known answer, sweep and verdict
arithmetic on synthetic tables, and the ``sensitivity`` command on a fit built from prior draws
(no sampling: every test here is fast)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from obscale_bayes.checks.psense import diagnose, psense_table
from obscale_bayes.checks.sensitivity import sweep_specs, sweep_table, variant_kind, verdict
from obscale_bayes.cli.main import main
from obscale_bayes.cli.sensitivity import parse_target
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.diagnostics import Diagnostics
from obscale_bayes.fit.fitted import _FORMAT, CapabilityModel
from obscale_bayes.model.build import build_model
from obscale_bayes.model.inputs import prepare_inputs
from obscale_bayes.spec.spec import load_spec


# ---------------------------------------------------------------- known answer: conjugate normal
def conjugate_tree(tau: float, n: int = 20, ybar: float = 1.0, draws=(4, 1000), seed=0):
    """Exact posterior draws of mu for y_i ~ N(mu, 1), mu ~ N(0, tau), with log densities."""
    rng = np.random.default_rng(seed)
    y = ybar + rng.standard_normal(n)
    y = y - y.mean() + ybar
    prec = 1 / tau**2 + n
    mu = rng.normal(n * ybar / prec, prec**-0.5, size=draws)
    log_prior = -0.5 * (mu / tau) ** 2 - np.log(tau * np.sqrt(2 * np.pi))
    log_lik = -0.5 * (y[None, None, :] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    dims = ("chain", "draw")
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (dims, mu)}),
            "log_prior": xr.Dataset({"mu": (dims, log_prior)}),
            "log_likelihood": xr.Dataset({"y": ((*dims, "obs"), log_lik)}),
        }
    )


def test_power_scaling_flags_a_strong_prior_and_not_a_flat_one():
    # prior sd 0.05 vs 20 observations of sd 1 (data sd of the mean 0.22): the prior dominates
    # and sits far from the data's mean (prior-data conflict); with sd 100 the data dominate.
    strong = psense_table(conjugate_tree(tau=0.05)).iloc[0]
    flat = psense_table(conjugate_tree(tau=100.0)).iloc[0]
    assert strong["prior"] > 0.05 and strong["diagnosis"] != "fine"
    assert flat["prior"] < 0.01 and flat["diagnosis"] == "fine"
    assert flat["likelihood"] > 0.05  # the data inform mu
    assert strong["prior"] > 10 * flat["prior"]


def test_diagnose_rule():
    assert diagnose(0.06, 0.06) == "prior-data conflict"
    assert diagnose(0.06, 0.01) == "strong prior / weak likelihood"
    assert diagnose(0.01, 0.5) == "fine"
    assert diagnose(0.049, 0.01) == "fine"


# ---------------------------------------------------------------- sweep arithmetic
def fc_table(medians, lowers, uppers, target="A @ 1e+24 FLOPs", family="A"):
    b = [f"b{i}" for i in range(len(medians))]
    return pd.DataFrame(
        {"model": target, "family": family, "flops": 1e24, "benchmark": b,
         "median": medians, "lower": lowers, "upper": uppers}
    )  # fmt: skip


def test_sweep_table_shift_and_width_ratio():
    base = fc_table([0.5, 0.2], [0.4, 0.1], [0.6, 0.5])  # widths 0.2 and 0.4
    wide = fc_table([0.6, 0.1], [0.3, 0.0], [0.7, 0.6])  # widths 0.4 and 0.6
    t = sweep_table({"default": base, "wide": wide}, "default", {"wide": "prior"})
    w = t[t["variant"] == "wide"].set_index("benchmark")
    assert w.loc["b0", "shift"] == pytest.approx(0.5)
    assert w.loc["b1", "shift"] == pytest.approx(-0.25)
    assert w.loc["b0", "width_ratio"] == pytest.approx(2.0)
    assert w.loc["b1", "width_ratio"] == pytest.approx(1.5)
    assert (w["kind"] == "prior").all()
    d = t[t["variant"] == "default"]
    assert (d["shift"] == 0).all() and np.allclose(d["width_ratio"], 1.0)
    assert d["kind"].eq("base").all()


def test_sweep_table_degenerate_base_interval_gives_nan_not_inf():
    base = fc_table([0.0], [0.0], [0.0])
    other = fc_table([0.1], [0.0], [0.2])
    t = sweep_table({"d": base, "o": other}, "d")
    assert t["shift"].isna().all()


def test_sweep_table_needs_the_base():
    with pytest.raises(UsageError, match="base variant"):
        sweep_table({"a": fc_table([0.5], [0.4], [0.6])}, "default")


def test_variant_kinds_and_override_specs():
    base = load_spec("default")
    assert variant_kind(base, base) == "base"
    assert variant_kind(load_spec("wide_priors"), base) == "prior"
    assert variant_kind(load_spec("k2"), base) == "structure"
    specs = sweep_specs(
        ["k2"], {"tight_slope": {"slope_mean": {"dist": "normal", "mu": 0.5, "sigma": 0.1}}}
    )
    assert list(specs) == ["k2", "tight_slope"]
    assert specs["tight_slope"].priors["slope_mean"].sigma == 0.1
    assert variant_kind(specs["tight_slope"], base) == "prior"
    with pytest.raises(UsageError, match="rename"):
        sweep_specs(["k2"], {"k2": {}})


def test_verdict_combines_psense_and_prior_variant_shifts():
    ps = pd.DataFrame(
        {"kind": ["parameter", "forecast", "forecast", "forecast"],
         "label": ["p", "A | b0", "A | b1", "A | b2"],
         "target": [None, "A", "A", "A"], "benchmark": [None, "b0", "b1", "b2"],
         "prior": [0.08, 0.01, 0.02, 0.06], "likelihood": [0.2, 0.2, 0.2, 0.2],
         "diagnosis": ["prior-data conflict", "fine", "fine", "prior-data conflict"]}
    )  # fmt: skip
    sw = pd.DataFrame(
        {"variant": ["wide", "wide", "wide", "k2", "k2", "k2"],
         "kind": ["prior"] * 3 + ["structure"] * 3,
         "target": ["A"] * 6, "benchmark": ["b0", "b1", "b2"] * 2,
         "shift": [0.1, -0.7, 0.0, 2.0, 0.0, 0.0]}
    )  # fmt: skip
    v = verdict(ps, sw).set_index("label")
    assert v.loc["p", "verdict"] == "prior-driven"  # psense
    assert v.loc["A | b1", "verdict"] == "prior-driven"  # prior variant shift 0.7 > 0.5
    assert v.loc["A | b1", "worst_prior_variant"] == "wide"
    assert v.loc["A | b1", "max_abs_shift_prior"] == pytest.approx(0.7)
    # a structural variant's large shift alone does not make it prior-driven
    assert v.loc["A | b0", "verdict"] == "robust"
    assert v.loc["A | b0", "max_abs_shift_structure"] == pytest.approx(2.0)
    assert v.loc["A | b2", "verdict"] == "prior-driven"
    assert "0.060" in v.loc["A | b2", "reason"]


# ---------------------------------------------------------------- CLI on a fit made of prior draws
@pytest.fixture(scope="module")
def prior_fit(tmp_path_factory):
    """A fit file whose 'posterior' is 200 prior draws of the default model on 5 families."""
    d = load_shipped()
    fams = ["Pythia", "Llama-2", "OPT", "BLOOM", "Qwen1.5"]
    data = d.subset(d.models.loc[d.models["family"].isin(fams), "model"].tolist())
    spec = load_spec("default")
    model = build_model(data, spec, inputs=prepare_inputs(data, spec))
    with model:
        pri = pm.sample_prior_predictive(draws=200, random_seed=1)
    post = pri["prior"].dataset
    tree = xr.DataTree.from_dict({"posterior": post})
    diag = Diagnostics(1.0, 400.0, 400.0, 0, 200, 1, 1.0, 0.0)
    meta = {"format": _FORMAT, "seed": 0, "draws": 200, "chains": 1, "sampler": "prior"}
    path = tmp_path_factory.mktemp("fit") / "prior.nc"
    CapabilityModel(spec, data, tree, diag, meta).save(path)
    return path


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue()


def test_cli_json_parses_with_parameters_and_forecasts(prior_fit):
    rc, out, _ = run(["sensitivity", str(prior_fit), "--json", "--forecast", "Pythia:2e23"])
    assert rc == 0
    doc = json.loads(out)
    ps = pd.DataFrame(doc["power_scaling"])
    assert set(ps["kind"]) == {"parameter", "forecast"}
    assert set(ps.loc[ps["kind"] == "forecast", "family"]) == {"Pythia"}
    assert ps[["prior", "likelihood"]].ge(0).all().all()
    assert set(ps["diagnosis"]) <= {"prior-data conflict", "strong prior / weak likelihood", "fine"}
    v = pd.DataFrame(doc["verdict"])
    assert len(v) == len(ps) and set(v["verdict"]) <= {"prior-driven", "robust"}
    assert "sweep" not in doc


def test_cli_table_has_the_verdict(prior_fit):
    rc, out, _ = run(["sensitivity", str(prior_fit)])
    assert rc == 0
    assert "Parameters" in out and "Forecasts" in out and "Verdict:" in out
    assert "NewFamily @ 1e+24 FLOPs" in out  # default targets: the quickstart ones


@pytest.mark.parametrize(
    "args, needle",
    [
        (["missing.nc"], "no such fit file"),
        (["README.md"], "not a readable NetCDF"),
        (["FIT", "--forecast", "Llama2"], "not FAMILY:FLOPS"),
        (["FIT", "--forecast", "Llama-2:lots"], "--forecast Llama-2:lots"),
        (["FIT", "--forecast", ":1e24"], "not FAMILY:FLOPS"),
        (["FIT", "--sweep", "--variant", "nope"], "unknown variant 'nope'"),
        (["FIT", "--variant", "k2"], "only applies with --sweep"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(prior_fit, args, needle):
    args = [str(prior_fit) if a == "FIT" else a for a in args]
    rc, out, err = run(["sensitivity", *args])
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("obscale-bayes: error:")
    assert needle in err


def test_parse_target():
    assert parse_target("Llama-2:8.4e24") == ("Llama-2", 8.4e24)
    assert parse_target("odd:name:1e24") == ("odd:name", 1e24)
