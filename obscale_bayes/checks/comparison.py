r"""Pointwise PSIS-LOO of a fit, the models it explains worst, and comparison across specs.

LOO
---
For every observed (model, benchmark) cell :math:`i` the expected log predictive density of
the cell left out, :math:`\mathrm{elpd}_i = \log p(y_i \mid y_{-i})`, is estimated by Pareto-
smoothed importance sampling (:func:`arviz.loo`) from the pointwise log-likelihood, which
:func:`~obscale_bayes.checks.ppc.predictive_tree` computes with
:func:`pymc.compute_log_likelihood` on the model rebuilt for the fit.  A Pareto
:math:`\hat k > 0.7` marks a cell whose estimate is unreliable (the posterior without the
cell is far from the posterior with it): common here, since each model's capabilities are
informed by only its own handful of scores.

Worst-explained models
----------------------
A model's cells are summed: :math:`\mathrm{elpd}_m = \sum_{i \in m} \mathrm{elpd}_i`.  Raw
elpd per cell depends on the benchmark (MMLU scores are measured to ~0.5 pp, HumanEval to ~4
pp, so their log densities differ by ~2 nats), so the ranking uses the *excess* per cell:
:math:`\frac1{n_m}\sum_{i\in m}(\mathrm{elpd}_i - \mathrm{median}_{i' \in j(i)}\,\mathrm{elpd}_{i'})`,
how much worse each of the model's cells is predicted than a typical cell of the same
benchmark.

Which K do the data support
---------------------------
:func:`compare_fits` runs :func:`arviz.compare` (stacking weights).  :func:`simplest_supported`
applies the rule: **take the simplest model (smallest complexity, e.g. K) whose elpd is
within** ``z`` **standard errors of the best**, i.e. ``elpd_diff <= z * dse`` with ``dse`` the
standard error of the paired elpd difference to the best model (``z = 2`` by default).  A more
complex model is preferred only when its gain in elpd is clearly larger than its uncertainty.

PSIS-LOO or K-fold?
-------------------
Each model's capabilities rest on its own ~8 scores, so many cells are influential (Pareto
:math:`\hat k > 0.7` for 15-25% of cells) and PSIS-LOO is optimistic, more so for larger K.  On
a table simulated from K = 1 (348 cells), PSIS-LOO put K = 2 ahead by 20.5 (dse 9.9, 2.1 SE);
3-fold cross-validation (:mod:`obscale_bayes.checks.kfold`) put K = 1 ahead by 17.9
(dse 13.0).  Use K-fold for the K decision when many cells have a high :math:`\hat k`.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd

from obscale_bayes.checks.ppc import predictive_tree
from obscale_bayes.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel

__all__ = [
    "Verdict",
    "compare_fits",
    "fit_specs",
    "k_verdict",
    "loo_by_model",
    "loo_cells",
    "pointwise_loo",
    "simplest_supported",
    "worst_explained",
]

#: Pareto k above which a cell's PSIS estimate is unreliable (ArviZ's threshold for S >= 2000).
PARETO_K_BAD = 0.7

_LOO_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pointwise_loo(fit: CapabilityModel, *, thin: int | None = None) -> Any:
    """PSIS-LOO of the fit with pointwise values (``arviz`` ``ELPDData``; cached per fit).

    ``.elpd``, ``.se``, ``.p`` (effective number of parameters), ``.elpd_i`` and ``.pareto_k``
    (DataArrays over ``obs``), ``.warning``.
    """
    key = None if thin is None or int(thin) <= 1 else int(thin)
    cache = _LOO_CACHE.setdefault(fit, {})
    if key not in cache:
        tree = predictive_tree(fit, thin=key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pareto k: reported in the tables
            cache[key] = az.loo(tree, pointwise=True, var_name="score")
    return cache[key]


def loo_cells(fit: CapabilityModel, *, thin: int | None = None) -> pd.DataFrame:
    """Tidy pointwise LOO: one row per observed cell.

    Columns ``model, family, benchmark, observed`` ([0, 1] scale), ``elpd`` (elpd_i),
    ``excess`` (elpd_i minus the median elpd_i of its benchmark), ``pareto_k``.
    """
    lo = pointwise_loo(fit, thin=thin)
    obs = fit.idata["observed_data"].dataset
    df = pd.DataFrame(
        {
            "model": obs["obs_model"].to_numpy().astype(str),
            "benchmark": obs["obs_benchmark"].to_numpy().astype(str),
            "observed": obs["score"].to_numpy(),
            "elpd": np.asarray(lo.elpd_i).reshape(-1),
            "pareto_k": np.asarray(lo.pareto_k).reshape(-1),
        }
    )
    fam = fit.data.models.set_index("model")["family"]
    df.insert(1, "family", df["model"].map(fam).to_numpy())
    df.insert(5, "excess", df["elpd"] - df.groupby("benchmark")["elpd"].transform("median"))
    return df


def loo_by_model(fit: CapabilityModel, *, thin: int | None = None) -> pd.DataFrame:
    """Pointwise elpd summed over each model's cells, worst-explained first.

    Columns ``model, family, n_cells, elpd`` (sum), ``elpd_per_cell``, ``excess_per_cell``
    (see the module docstring; the sort key), ``max_pareto_k``, ``n_bad_k`` (cells with
    k > 0.7), ``worst_benchmark`` (its cell with the lowest excess).
    """
    cells = loo_cells(fit, thin=thin)
    g = cells.groupby("model", sort=False)
    worst = cells.loc[g["excess"].idxmin(), ["model", "benchmark"]].set_index("model")
    out = pd.DataFrame(
        {
            "family": g["family"].first(),
            "n_cells": g.size(),
            "elpd": g["elpd"].sum(),
            "elpd_per_cell": g["elpd"].mean(),
            "excess_per_cell": g["excess"].mean(),
            "max_pareto_k": g["pareto_k"].max(),
            "n_bad_k": g["pareto_k"].apply(lambda k: int((k > PARETO_K_BAD).sum())),
        }
    )
    out["worst_benchmark"] = worst["benchmark"]
    out = out.sort_values("excess_per_cell").reset_index()
    return out


def worst_explained(fit: CapabilityModel, n: int = 10, *, thin: int | None = None) -> pd.DataFrame:
    """The ``n`` models the fit explains worst (lowest elpd excess per cell); see :func:`loo_by_model`."""
    if int(n) < 1:
        raise UsageError(f"worst_explained: n must be a positive integer, got {n}")
    return loo_by_model(fit, thin=thin).head(int(n)).reset_index(drop=True)


# ---------------------------------------------------------------- several specs
def fit_specs(
    data: BenchmarkData, names: Iterable[str], **fit_kwargs: Any
) -> dict[str, CapabilityModel]:
    """Fit each spec (a variant name or spec file) on ``data``, one after another.

    ``fit_kwargs`` go to :meth:`CapabilityModel.fit` (e.g. ``draws, tune, chains, seed``).
    """
    from obscale_bayes.fit.fitted import CapabilityModel

    names = list(names)
    if not names:
        raise UsageError("fit_specs: give at least one spec name")
    return {str(n): CapabilityModel.fit(data, n, **fit_kwargs) for n in names}


def compare_fits(
    fits: Mapping[str, CapabilityModel], *, method: str = "stacking", thin: int | None = None
) -> pd.DataFrame:
    """:func:`arviz.compare` of fits on the same data, best first.

    Columns as ArviZ gives them (``rank, elpd, p, elpd_diff, weight, se, dse, warning, ...``)
    plus ``n_factors``, ``likelihood``, ``converged`` (the convergence gate), ``n_cells`` and
    ``n_bad_k`` (cells with Pareto k > 0.7) of each fit.
    """
    if len(fits) < 2:
        raise UsageError("compare_fits: give at least two fits to compare")
    ref = None
    for name, f in fits.items():
        obs = f.idata["observed_data"].dataset
        key = (obs["obs_model"].to_numpy().astype(str), obs["obs_benchmark"].to_numpy().astype(str))
        if ref is None:
            ref, ref_name = key, name
        elif len(key[0]) != len(ref[0]) or not (
            np.array_equal(key[0], ref[0]) and np.array_equal(key[1], ref[1])
        ):
            raise UsageError(
                f"compare_fits: fits '{ref_name}' and '{name}' were made on different data; "
                "LOO can only compare fits of the same observed cells"
            )
    loos = {name: pointwise_loo(f, thin=thin) for name, f in fits.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = az.compare(loos, method=method, round_to="none")
    table = pd.DataFrame(table)
    table["n_factors"] = [fits[n].spec.n_factors for n in table.index]
    table["likelihood"] = [fits[n].spec.structure["likelihood"] for n in table.index]
    table["converged"] = [bool(fits[n].diagnostics.passed) for n in table.index]
    table["n_cells"] = [int(np.asarray(loos[n].pareto_k).size) for n in table.index]
    table["n_bad_k"] = [
        int((np.asarray(loos[n].pareto_k) > PARETO_K_BAD).sum()) for n in table.index
    ]
    table.index.name = "fit"
    return table


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`simplest_supported`.

    Attributes
    ----------
    choice : str
        The simplest fit whose elpd is within ``z`` standard errors of the best.
    best : str
        The fit with the highest elpd.
    candidates : list of str
        Every fit within ``z`` standard errors of the best.
    z : float
    table : pandas.DataFrame
        The comparison table with ``complexity`` and ``within`` (the rule's test) columns.
    text : str
        One paragraph stating the result with the LOO numbers.
    """

    choice: str
    best: str
    candidates: list[str]
    z: float
    table: pd.DataFrame = field(repr=False)
    text: str = ""


def simplest_supported(
    table: pd.DataFrame,
    complexity: Mapping[str, float] | str,
    *,
    z: float = 2.0,
    label: str = "complexity",
) -> Verdict:
    r"""The simplest fit whose elpd is within ``z`` standard errors of the best.

    Parameters
    ----------
    table : pandas.DataFrame
        An :func:`arviz.compare` table (index = fit names; columns ``elpd, elpd_diff, dse``,
        and ``se``, ``p`` if present).
    complexity : mapping or str
        Complexity of each fit (e.g. its K), or the name of a column of ``table`` holding it.
    z : float
        Fit :math:`m` is *within* when ``elpd_diff_m <= z * dse_m`` (the best always is).
        Ties in complexity go to the higher elpd.
    label : str
        Name of the complexity in the verdict text (e.g. ``"K"``).
    """
    need = {"elpd", "elpd_diff", "dse"}
    if not need <= set(table.columns):
        raise UsageError(
            f"simplest_supported: the table lacks columns {sorted(need - set(table.columns))}"
        )
    if z < 0:
        raise UsageError(f"simplest_supported: z must be >= 0, got {z}")
    t = table.copy()
    if isinstance(complexity, str):
        if complexity not in t.columns:
            raise UsageError(f"simplest_supported: no column '{complexity}' in the table")
        t["complexity"] = t[complexity].astype(float)
    else:
        missing = [n for n in t.index if n not in complexity]
        if missing:
            raise UsageError(f"simplest_supported: no complexity given for {missing}")
        t["complexity"] = [float(complexity[n]) for n in t.index]
    best = str(t["elpd"].idxmax())
    diff = t["elpd"].max() - t["elpd"]  # recomputed so a reference other than the best is fine
    t["within"] = (diff <= z * t["dse"].fillna(0.0)) | (t.index == best)
    cand = t[t["within"]].sort_values(["complexity", "elpd"], ascending=[True, False])
    choice = str(cand.index[0])
    text = _verdict_text(t, best, choice, z, label) + _cautions(t, [best, choice])
    return Verdict(choice, best, [str(c) for c in cand.index], float(z), t, text)


def _fmt_c(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _verdict_text(t: pd.DataFrame, best: str, choice: str, z: float, label: str) -> str:
    b, c = t.loc[best], t.loc[choice]
    se = f" (SE {b['se']:.1f})" if "se" in t else ""
    head = (
        f"best elpd_loo: '{best}' ({label} = {_fmt_c(b['complexity'])}), elpd_loo = "
        f"{b['elpd']:.1f}{se}. Supported: '{choice}' ({label} = {_fmt_c(c['complexity'])}), "
    )
    if choice != best:
        why = f"the simplest fit within {z:g} SE of the best"
    elif (t.drop(index=best)["complexity"] < b["complexity"]).any():
        why = f"every simpler fit is more than {z:g} SE worse"
    else:
        why = "the best fit and the simplest one compared"
    parts = [
        f"'{n}' ({label} = {_fmt_c(r['complexity'])}) {b['elpd'] - r['elpd']:.1f} lower "
        f"(dse {r['dse']:.1f}, {(b['elpd'] - r['elpd']) / max(r['dse'], 1e-12):.1f} SE)"
        for n, r in t.drop(index=best).sort_values("elpd", ascending=False).iterrows()
    ]
    return head + why + ("; vs the best: " + "; ".join(parts) if parts else "") + "."


def _cautions(t: pd.DataFrame, names: list[str]) -> str:
    """Warnings about the fits a verdict rests on: unconverged fits, unreliable PSIS."""
    names = list(dict.fromkeys(names))
    out = ""
    if "converged" in t.columns:
        bad = [n for n in t.index if not bool(t.loc[n, "converged"])]
        if bad:
            out += f" Caution: {', '.join(repr(n) for n in bad)} failed the convergence gate."
    if "n_bad_k" in t.columns and "n_cells" in t.columns:
        bad_k = {n: int(t.loc[n, "n_bad_k"]) for n in names if int(t.loc[n, "n_bad_k"])}
        if bad_k:
            n_cells = int(t["n_cells"].iloc[0])
            out += (
                " Caution: Pareto k > 0.7 in "
                + ", ".join(f"{k} of {n_cells} cells of '{n}'" for n, k in bad_k.items())
                + "; PSIS-LOO is unreliable there (K-fold cross-validation settles it)."
            )
    return out


def k_verdict(table: pd.DataFrame, *, z: float = 2.0) -> Verdict:
    """Which K the data support: :func:`simplest_supported` on the ``n_factors`` column.

    ``table`` is a :func:`compare_fits` table of fits that differ only in K (one likelihood:
    otherwise the rule would compare K across likelihoods).
    """
    if "n_factors" not in table.columns:
        raise UsageError("k_verdict: the table has no n_factors column; use compare_fits")
    if "likelihood" in table.columns and table["likelihood"].nunique() > 1:
        raise UsageError(
            "k_verdict: the table mixes likelihoods "
            f"({', '.join(sorted(table['likelihood'].unique()))}); compare fits of one likelihood"
        )
    return simplest_supported(table, "n_factors", z=z, label="K")
