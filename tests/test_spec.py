"""Spec files: validation, defaults, variants, and the installed copy of models/."""

from __future__ import annotations

from pathlib import Path

import pytest

from obscale_bayes.errors import SpecError
from obscale_bayes.spec.spec import (
    DEFAULT_PRIORS,
    available_specs,
    load_spec,
    models_dir,
    spec_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]


def test_every_variant_loads_and_round_trips():
    names = available_specs()
    assert {
        "default",
        "k1",
        "k2",
        "k4",
        "student_t",
        "shared_slope",
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
        s.priors["misfit"]["sigma"] == 0.1
        and s.n_factors == 2
        and s.anchors == ["mmlu", "hellaswag"]
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
