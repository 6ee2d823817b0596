"""Declarative model specifications: structure and priors, read from TOML and validated.

A spec file (``models/*.toml``) has three tables::

    name = "default"
    description = "..."

    [structure]
    n_factors = 3
    anchors = ["mmlu", "hellaswag", "humaneval"]
    ...

    [priors]
    misfit = { dist = "halfnormal", sigma = 0.03 }
    ...

Any key left out takes the value of :data:`DEFAULT_STRUCTURE` / :data:`DEFAULT_PRIORS`, so a
variant file only lists what it changes.  Unknown keys, unknown distributions and invalid
distribution parameters raise :class:`~obscale_bayes.errors.SpecError` naming the file and key.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obscale_bayes.errors import SpecError
from obscale_bayes.spec.priors import PRIOR_FAMILIES, Prior, parse_prior

#: Structural options with their defaults (see README "The model" for what each means).
DEFAULT_STRUCTURE: dict[str, Any] = {
    # K, the number of latent capabilities.
    "n_factors": 3,
    # One benchmark per capability.  Capability k is measured on the logit scale of its anchor:
    # the anchor's loading row is the k-th unit vector and its intercept is 0.  This pins
    # rotation, sign, scale and location of the factors (see model.py).
    "anchors": ["mmlu", "hellaswag", "humaneval"],
    # Family-specific slopes b_f (True) or one population slope per capability (False, the
    # default: chosen on training models only, docs/model.md "Shared or family slopes").
    "family_slopes": False,
    # Family-by-benchmark offsets delta_fj on the linear predictor of the non-anchor benchmarks,
    # partially pooled, delta_fj ~ N(0, sigma^delta_j): a family's consistent lead or lag on a
    # benchmark beyond what its K capabilities imply (on an anchor that is a_fk already).
    # True (the default): chosen on training models only (docs/model.md "Family offsets").
    "family_offsets": True,
    # Per-benchmark compute slopes c_j on the linear predictor of the non-anchor benchmarks,
    # eta_mj += c_j x_m, partially pooled, c_j ~ N(0, sigma^c): a benchmark's own trend with
    # compute beyond the lambda_j . b_k its loadings imply (the family + FLOPs sigmoid fits each
    # benchmark its own slope; the K capabilities tie the slopes to the cross-model loadings).
    # False: the default (docs/model.md "Benchmark slopes").
    "benchmark_slopes": False,
    # Which chance floors g_j are fitted (prior `floor`): "non_anchor" (the default), every
    # non-anchor benchmark's: a metadata chance level says where guessing lands, not where the
    # weakest models' curve flattens (ARC-C acc_norm, Winogrande); "blank", only those the
    # metadata leave blank (the `metadata_floors` variant).  The anchors' floors stay fixed:
    # capability k is the anchor's logit above its floor.  Chosen on training models only
    # (docs/model.md "Fitted chance floors").
    "fitted_floors": "non_anchor",
    # "normal" or "student_t" (heavier tails on the misfit term).
    "likelihood": "normal",
    "student_t_nu": 4.0,
    # Where the per-benchmark misfit lives: "score" (sd tau_j on the score scale) or "logit"
    # (sd nu_j on the logit scale, delta method, plus a fixed score-scale floor misfit_floor).
    "misfit_scale": "score",
    "misfit_floor": 0.005,
    # Fixed score-scale misfit of the anchor benchmarks (not identifiable from the data).
    "anchor_misfit": 0.015,
    # The anchors' misfit for models the fit has not seen (forecasts from compute or from given
    # scores); None: anchor_misfit.  In the fit, an anchor's own variance cannot be told from the
    # models' capability residuals, so a small fixed value pins the factors; for a new model it
    # says how far its anchor score may stray from the capability its other scores imply.
    # 0.08: chosen on training models only (docs/model.md "The anchors of new models").
    "new_model_anchor_misfit": 0.08,
    # The anchors' misfit of a new model forecast from compute only (family + FLOPs, no score
    # given); None: new_model_anchor_misfit.  With no score to condition on, it is only the
    # predictive noise of the anchor cells, on top of the capability residual the fit
    # estimates.  0.015 (the fit's own anchor_misfit): chosen on training models only
    # (studies/compute_anchors.py; docs/model.md "The anchors of compute forecasts").
    "compute_anchor_misfit": 0.015,
    # Item count assumed for the sampling-noise term where the metadata do not give one.
    "default_n_items": 1000,
    # Centre of the compute axis: x = log10(FLOPs / 1e21) - x0.
    "x0": 1.5,
    # Non-centred family efficiencies a_f.  Centred, the funnel of efficiency_sd left R-hat
    # 1.03-1.32 on training sets of weak models (docs/model.md "The default passes its gate").
    "noncentered_efficiency": True,
    # Factors (named by anchor) whose model residuals e_mk are non-centred; the others are
    # centred.  Not given in a spec file: every anchor (a spec with other anchors gets its own).
    "noncentered_factors": ["mmlu", "hellaswag", "humaneval"],
    # Benchmark groups (e.g. "emergent", "post_training", "agent") linked to the anchors'
    # *bounded* score scale u_k = 10 (sigmoid(theta_k) - 0.5) with loadings >= 0 (prior
    # "positive_loading").  Fitted on weak models, a downstream task can otherwise load
    # negatively on a capability still at its chance floor (MMLU logit ~ -5, barely determined),
    # and that sign flips its forecasts once stronger models leave the floor.
    "bounded_groups": [],
    # A trend of family efficiency with release date: a_fk ~ N(mu_k + gamma_k t_f, sd_k), t_f the
    # median release date of family f's models in years since release_ref_year (latent, with a
    # prior from the dated families, where no model of the family has a date).  A family the
    # fit has not seen is forecast as recent as the newest dated family.
    "release_trend": False,
    "release_ref_year": 2023.0,
}

#: Prior of every parameter, as ``{dist = ..., <params>}`` (typed by :mod:`obscale_bayes.spec.priors`).
DEFAULT_PRIORS: dict[str, dict[str, Any]] = {
    # eta_j = alpha_j + lambda_j . theta  (non-anchor benchmarks)
    "intercept": {"dist": "normal", "mu": 0.0, "sigma": 2.0},
    "loading": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
    # Loadings of benchmarks in structure.bounded_groups (a positive distribution).
    "positive_loading": {"dist": "halfnormal", "sigma": 1.0},
    # Family efficiency a_f,k ~ N(mu_a_k, sigma_a_k): population mean and spread.
    "efficiency_mean": {"dist": "normal", "mu": 0.0, "sigma": 2.0},
    "efficiency_sd": {"dist": "halfnormal", "sigma": 1.0},
    # gamma_k: change of family efficiency per year of release date (release_trend only)
    "efficiency_trend": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
    # Family slope in log10 compute b_f,k ~ N(mu_b_k, sigma_b_k).
    "slope_mean": {"dist": "normal", "mu": 0.5, "sigma": 1.0},
    "slope_sd": {"dist": "halfnormal", "sigma": 0.3},
    # Spread sigma^delta_j of the family-by-benchmark offsets (structure.family_offsets), logit.
    "family_offset_sd": {"dist": "halfnormal", "sigma": 0.3},
    # Spread sigma^c of the per-benchmark compute slopes (structure.benchmark_slopes), logit per
    # decade of FLOPs.
    "benchmark_slope_sd": {"dist": "halfnormal", "sigma": 0.3},
    # Model-level residual e_mk ~ N(0, sigma_e_k).
    "residual_sd": {"dist": "halfnormal", "sigma": 0.5},
    # Per-benchmark misfit sd on the score scale, added to the sampling noise.
    "misfit": {"dist": "halfnormal", "sigma": 0.05},
    # Per-benchmark misfit sd on the logit scale (misfit_scale = "logit").
    "logit_misfit": {"dist": "halfnormal", "sigma": 0.5},
    # Chance floor for benchmarks whose metadata leaves it blank (e.g. TruthfulQA MC2).
    "floor": {"dist": "uniform", "lower": 0.0, "upper": 0.5},
    # Unknown FLOPs: log10(tokens in T) when parameters are known (FLOPs = 6 N D) ...
    "log10_tokens_t": {"dist": "normal", "mu": 0.3, "sigma": 0.5},
    # ... and log10(FLOPs / 1e21) when parameters are unknown too.
    "log10_flops": {"dist": "normal", "mu": 2.0, "sigma": 1.5},
}

_TOP_KEYS = {"name", "description", "structure", "priors"}


@dataclass(frozen=True)
class ModelSpec:
    """A validated model specification.

    Attributes
    ----------
    name, description : str
        Identification of the variant.
    structure : dict
        Structural options; every key of :data:`DEFAULT_STRUCTURE` is present.
    priors : dict of str to Prior
        Every key of :data:`DEFAULT_PRIORS` is present, each a typed, validated
        :class:`~obscale_bayes.spec.priors.Prior` (``to_dict`` gives the spec-file form).
    source : str
        Where the spec was read from (file path or ``"<dict>"``).
    """

    name: str
    description: str
    structure: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, Prior] = field(default_factory=dict)
    source: str = "<dict>"

    @property
    def n_factors(self) -> int:
        return int(self.structure["n_factors"])

    @property
    def anchors(self) -> list[str]:
        return list(self.structure["anchors"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "structure": copy.deepcopy(self.structure),
            "priors": {k: p.to_dict() for k, p in self.priors.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<fit file>") -> ModelSpec:
        d = json.loads(text)
        # a fit written before the key existed forecasts new models as it did then
        d.get("structure", {}).setdefault("new_model_anchor_misfit", None)
        d.get("structure", {}).setdefault("family_offsets", False)
        d.get("structure", {}).setdefault("compute_anchor_misfit", None)
        d.get("structure", {}).setdefault("benchmark_slopes", False)
        d.get("structure", {}).setdefault("fitted_floors", "blank")
        return spec_from_dict(d, source=source)

    def with_overrides(
        self, priors: dict[str, dict[str, Any] | Prior] | None = None, **structure: Any
    ) -> ModelSpec:
        """A copy with some priors (spec-file dicts or typed priors) and/or structural options
        replaced (validated)."""
        d = self.to_dict()
        d["structure"].update(structure)
        for key, val in (priors or {}).items():
            d["priors"][key] = val
        return spec_from_dict(d, source=f"{self.source} (overridden)")


def _check_structure(where: str, s: dict[str, Any]) -> dict[str, Any]:
    k = s["n_factors"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 6:
        raise SpecError(f"{where}: structure.n_factors must be an integer from 1 to 6, got {k!r}")
    anchors = s["anchors"]
    if not isinstance(anchors, list) or not all(isinstance(a, str) for a in anchors):
        raise SpecError(f"{where}: structure.anchors must be a list of benchmark names")
    if len(anchors) < k:
        raise SpecError(
            f"{where}: structure.anchors lists {len(anchors)} benchmark(s) but n_factors = {k}; "
            "give one anchor benchmark per factor"
        )
    if len(set(anchors[:k])) < k:
        raise SpecError(f"{where}: structure.anchors must be distinct, got {anchors[:k]}")
    s["anchors"] = anchors[:k]
    ncf = s["noncentered_factors"]
    if not isinstance(ncf, list) or not all(isinstance(a, str) for a in ncf):
        raise SpecError(f"{where}: structure.noncentered_factors must be a list of anchor names")
    stray = [a for a in ncf if a not in s["anchors"]]
    if stray:
        raise SpecError(
            f"{where}: structure.noncentered_factors names {stray}, which are not anchors "
            f"{s['anchors']}; list anchors only"
        )
    bg = s["bounded_groups"]
    if not isinstance(bg, list) or not all(isinstance(g, str) for g in bg):
        raise SpecError(f"{where}: structure.bounded_groups must be a list of benchmark groups")
    if s["likelihood"] not in ("normal", "student_t"):
        raise SpecError(
            f"{where}: structure.likelihood must be 'normal' or 'student_t', got {s['likelihood']!r}"
        )
    for b in ("family_slopes", "family_offsets", "benchmark_slopes", "noncentered_efficiency",
              "release_trend"):  # fmt: skip
        if not isinstance(s[b], bool):
            raise SpecError(f"{where}: structure.{b} must be true or false, got {s[b]!r}")
    for num in ("x0", "student_t_nu", "release_ref_year"):
        v = s[num]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SpecError(f"{where}: structure.{num} must be a number, got {v!r}")
        s[num] = float(v)
    if s["fitted_floors"] not in ("blank", "non_anchor"):
        raise SpecError(f"{where}: structure.fitted_floors must be 'blank' or 'non_anchor', "
                        f"got {s['fitted_floors']!r}")  # fmt: skip
    if s["misfit_scale"] not in ("score", "logit"):
        raise SpecError(
            f"{where}: structure.misfit_scale must be 'score' or 'logit', got {s['misfit_scale']!r}"
        )
    mf = s["misfit_floor"]
    if isinstance(mf, bool) or not isinstance(mf, int | float) or not 0 <= mf < 0.5:
        raise SpecError(f"{where}: structure.misfit_floor must be a number in [0, 0.5), got {mf!r}")
    s["misfit_floor"] = float(mf)
    am = s["anchor_misfit"]
    if isinstance(am, bool) or not isinstance(am, int | float) or not 0 <= am < 0.5:
        raise SpecError(
            f"{where}: structure.anchor_misfit must be a number in [0, 0.5), got {am!r}"
        )
    s["anchor_misfit"] = float(am)
    # optional anchor misfits of new models: left out (None), they fall back to the next one
    for key, fallback in (("new_model_anchor_misfit", "anchor_misfit"),
                          ("compute_anchor_misfit", "new_model_anchor_misfit")):  # fmt: skip
        v = s[key]
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 0.5:
            raise SpecError(f"{where}: structure.{key} must be a number in [0, 0.5) "
                            f"(or left out: {fallback}), got {v!r}")  # fmt: skip
        s[key] = float(v)
    n = s["default_n_items"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SpecError(f"{where}: structure.default_n_items must be a positive integer, got {n!r}")
    if s["student_t_nu"] <= 1:
        raise SpecError(f"{where}: structure.student_t_nu must be > 1, got {s['student_t_nu']}")
    return s


def _merge(where: str, d: dict[str, Any], section: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The defaults of ``[section]`` updated with what the spec gives; unknown keys are errors."""
    given = d.get(section, {})
    if not isinstance(given, dict):
        raise SpecError(f"{where}: [{section}] must be a table")
    bad = set(given) - set(defaults)
    if bad:
        raise SpecError(
            f"{where}: unknown key(s) in [{section}]: {sorted(bad)}; allowed: {sorted(defaults)}"
        )
    merged = copy.deepcopy(defaults)
    merged.update(copy.deepcopy(given))
    return merged


def spec_from_dict(d: dict[str, Any], source: str = "<dict>") -> ModelSpec:
    """Validate a spec given as a dict (the parsed TOML) and fill in defaults."""
    where = source
    if not isinstance(d, dict):
        raise SpecError(f"{where}: a spec must be a table of name/description/structure/priors")
    unknown = set(d) - _TOP_KEYS
    if unknown:
        raise SpecError(
            f"{where}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
        )
    merged_st = _merge(where, d, "structure", DEFAULT_STRUCTURE)
    anc, k = merged_st["anchors"], merged_st["n_factors"]
    if "noncentered_factors" not in d.get("structure", {}) and isinstance(anc, list):
        # The default non-centres every capability, whichever anchors the spec names.
        merged_st["noncentered_factors"] = anc[:k] if isinstance(k, int) else list(anc)
    structure = _check_structure(where, merged_st)
    merged = _merge(where, d, "priors", DEFAULT_PRIORS)
    priors = {k: parse_prior(where, k, v) for k, v in merged.items()}
    if not priors["positive_loading"].nonnegative_support:
        ok = [n for n, c in PRIOR_FAMILIES.items() if c.nonnegative_support]
        raise SpecError(
            f"{where}: prior 'positive_loading' must be a positive distribution "
            f"({', '.join(ok[:-1])} or {ok[-1]})"
        )
    name = d.get("name", Path(source).stem if source != "<dict>" else "custom")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}: 'name' must be a non-empty string")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise SpecError(f"{where}: 'description' must be a string")
    return ModelSpec(name=name, description=desc, structure=structure, priors=priors, source=source)


def models_dir() -> Path:
    """The folder of named spec variants (``obscale_bayes/spec/variants``; ``models/`` links here)."""
    return Path(__file__).resolve().parent / "variants"


def load_spec(path_or_name: str | Path | None = None) -> ModelSpec:
    """Read and validate a spec file, or a named variant from ``models/`` (default: ``default``)."""
    if path_or_name is None:
        path_or_name = "default"
    p = Path(path_or_name)
    if not p.suffix and not p.exists():
        p = models_dir() / f"{path_or_name}.toml"
        if not p.exists():
            names = sorted(q.stem for q in models_dir().glob("*.toml"))
            raise SpecError(f"{path_or_name}: no such spec variant; available: {', '.join(names)}")
    if not p.exists():
        raise SpecError(
            f"{p}: spec file not found; pass a .toml file or one of the names in models/"
        )
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    return spec_from_dict(d, source=str(p))


def available_specs() -> list[str]:
    """Names of the shipped spec variants."""
    return sorted(q.stem for q in models_dir().glob("*.toml"))
