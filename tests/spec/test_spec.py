"""Spec files: validation, defaults, variants, and the installed copy of models/."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from obscale_bayes.errors import SpecError
from obscale_bayes.spec.priors import PRIOR_FAMILIES, Prior, parse_prior
from obscale_bayes.spec.spec import (
    DEFAULT_PRIORS,
    ModelSpec,
    available_specs,
    load_spec,
    models_dir,
    spec_from_dict,
)

ROOT = Path(__file__).resolve().parents[2]

#: Parameters of every prior family (ints where a spec file may write them).
PARAMS = {
    "normal": {"mu": 0.5, "sigma": 2},
    "halfnormal": {"sigma": 0.3},
    "exponential": {"lam": 4},
    "lognormal": {"mu": -1.0, "sigma": 0.5},
    "beta": {"alpha": 2, "beta": 5},
    "uniform": {"lower": 0.0, "upper": 0.5},
    "gamma": {"alpha": 3, "beta": 2},
}


def test_every_variant_loads_and_round_trips():
    names = available_specs()
    assert {
        "default",
        "k1",
        "k2",
        "k4",
        "student_t",
        "family_slopes",
        "wide_priors",
        "narrow_priors",
    } <= set(names)
    for n in names:
        s = load_spec(n)
        assert spec_from_dict(s.to_dict()).to_json() == s.to_json()
        assert len(s.anchors) == s.n_factors
        assert set(s.priors) == set(DEFAULT_PRIORS)


def test_one_copy_of_the_spec_variants():
    """The variants live once, in the package; ``models/`` is a link to that folder."""
    assert (ROOT / "models").is_symlink()
    assert models_dir() == (ROOT / "obscale_bayes" / "spec" / "variants").resolve()
    assert (ROOT / "models").resolve() == models_dir()


def test_overrides_apply_and_validate():
    s = load_spec("default").with_overrides(
        {"misfit": {"dist": "halfnormal", "sigma": 0.1}}, n_factors=2, noncentered_factors=[]
    )
    assert (
        s.priors["misfit"].sigma == 0.1 and s.n_factors == 2 and s.anchors == ["mmlu", "hellaswag"]
    )


@pytest.mark.parametrize(
    "d, match",
    [
        ({"structure": {"n_factor": 3}}, r"unknown key\(s\) in \[structure\]"),
        ({"priors": {"misfit": {"dist": "halfnormal", "sigma": -1}}}, "must be > 0"),
        ({"priors": {"misfit": {"dist": "cauchy", "sigma": 1}}}, "unknown dist"),
        ({"priors": {"misfit": {"dist": "normal", "mu": 0}}}, "missing parameter 'sigma'"),
        ({"priors": {"loading": {"dist": "uniform", "lower": 1, "upper": 0}}}, "lower < upper"),
        ({"structure": {"n_factors": 4, "anchors": ["mmlu"]}}, "one anchor benchmark per factor"),
        ({"structure": {"likelihood": "cauchy"}}, "likelihood"),
        ({"structure": {"noncentered_factors": ["gsm8k"]}}, "not anchors"),
        ({"structure": {"fitted_floors": "all"}}, "fitted_floors must be 'blank' or 'non_anchor'"),
        ({"extra": 1}, "unknown top-level key"),
    ],
)
def test_invalid_specs_name_the_problem(d, match):
    with pytest.raises(SpecError, match=match):
        spec_from_dict(d, source="bad.toml")


def test_unknown_variant_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="no such spec variant"):
        load_spec("nope")
    p = tmp_path / "broken.toml"
    p.write_text("[structure\nn_factors = 3\n")
    with pytest.raises(SpecError, match="broken.toml: not valid TOML"):
        load_spec(p)


# ---------------------------------------------------------------- typed priors
def test_priors_are_typed_and_json_keeps_the_dict_form():
    """``spec.priors`` holds typed priors; ``to_json`` writes the dict form fit files store."""
    for n in available_specs():
        s = load_spec(n)
        assert all(isinstance(p, Prior) for p in s.priors.values())
        stored = json.loads(s.to_json())["priors"]
        raw = tomllib.loads((models_dir() / f"{n}.toml").read_text()).get("priors", {})
        for key, default in DEFAULT_PRIORS.items():
            given = raw.get(key, default)
            assert stored[key] == {k: (v if k == "dist" else float(v)) for k, v in given.items()}
        # an old fit file's stored spec (the dict form) loads to the same spec
        assert ModelSpec.from_json(s.to_json()).priors == s.priors


@pytest.mark.parametrize("d", [{"dist": d, **p} for d, p in PARAMS.items()])
def test_every_prior_family_draws_like_its_pymc_distribution(d):
    prior = parse_prior("test", "x", d)
    assert prior == PRIOR_FAMILIES[d["dist"]](**{k: float(v) for k, v in d.items() if k != "dist"})
    assert parse_prior("test", "x", prior.to_dict()) == prior
    ours = prior.draw(np.random.default_rng(0), 40_000)
    with pm.Model():
        rv = prior.to_pymc("x")
    theirs = pm.draw(rv, draws=40_000, random_seed=1)
    for q in (0.1, 0.5, 0.9):
        a, b = np.quantile(ours, q), np.quantile(theirs, q)
        assert abs(a - b) < 0.03 * (np.quantile(theirs, 0.9) - np.quantile(theirs, 0.1))


def test_prior_errors_are_one_line_and_name_the_key():
    with pytest.raises(
        SpecError, match=r"bad.toml: prior 'misfit' parameter 'sigma' must be > 0, got -1$"
    ):
        parse_prior("bad.toml", "misfit", {"dist": "halfnormal", "sigma": -1})
    with pytest.raises(SpecError, match="must be a finite number"):
        parse_prior("bad.toml", "misfit", {"dist": "halfnormal", "sigma": float("nan")})
    with pytest.raises(SpecError, match=r"unknown parameter\(s\) \['mu'\]"):
        parse_prior("bad.toml", "misfit", {"dist": "halfnormal", "sigma": 1, "mu": 0})
    with pytest.raises(SpecError, match="must be a table"):
        parse_prior("bad.toml", "misfit", 0.1)
    with pytest.raises(SpecError, match="'log10_flops' must be a normal distribution"):
        from obscale_bayes.model.inputs import x_prior_for_unknown

        s = load_spec().with_overrides({"log10_flops": {"dist": "halfnormal", "sigma": 1.0}})
        x_prior_for_unknown(np.array([np.nan]), s)
