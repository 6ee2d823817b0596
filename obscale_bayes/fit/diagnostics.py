"""Convergence diagnostics of a fit and the gate ``obscale-bayes check`` applies.

The gate: every parameter and every model's capability has R-hat <= 1.01 and bulk ESS >= 400,
there are no divergent transitions and every chain has E-BFMI >= 0.3.  The report lists the
worst parameters so a failing fit says where to look.

A fit made with the approximate mode (``inference = "advi"``, :func:`approx_diagnostics`) has
no Markov chains, so R-hat, ESS, divergences and E-BFMI do not apply: its record says which
inference was used, and "passed" means the optimisation reached its plateau
(:func:`obscale_bayes.fit.sampling.plateau`), not that the draws are the posterior's.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

#: Thresholds of the convergence gate.
RHAT_MAX = 1.01
ESS_MIN = 400.0
BFMI_MIN = 0.3

#: Variables the gate is evaluated on: the free parameters that carry meaning plus the
#: capabilities of every model.  Non-centred z-variables are covered through the
#: deterministic quantities built from them.
GATE_VARS = (
    "efficiency_mean",
    "efficiency_sd",
    "efficiency_trend",
    "release_latent",
    "efficiency",
    "slope_mean",
    "slope_sd",
    "slope",
    "residual_sd",
    "capability",
    "loading_free",
    "loading_positive",
    "intercept_free",
    "misfit_free",
    "logit_misfit_free",
    "floor_fitted",
    "x_latent",
)


@dataclass
class Diagnostics:
    """Summary of convergence diagnostics (JSON-serialisable)."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_draws: int
    n_chains: int
    min_bfmi: float
    sampling_seconds: float
    worst: list[dict] = field(default_factory=list)
    #: "nuts" (the gate above applies) or "advi" (approximate; the plateau test applies).
    inference: str = "nuts"
    iterations: int = 0
    elbo_improvement: float = float("nan")
    elbo_noise: float = float("nan")
    elbo_converged: bool = False

    @property
    def approximate(self) -> bool:
        """Whether the draws come from an approximation (ADVI), not from MCMC."""
        return self.inference != "nuts"

    @property
    def passed(self) -> bool:
        if self.approximate:
            return self.elbo_converged
        return (
            self.max_rhat <= RHAT_MAX
            and self.min_ess_bulk >= ESS_MIN
            and self.divergences == 0
            and self.min_bfmi >= BFMI_MIN
        )

    def failures(self) -> list[str]:
        out = []
        if self.approximate:
            if not self.elbo_converged:
                out.append(
                    f"ADVI still improving after {self.iterations} steps (loss fell by "
                    f"{self.elbo_improvement:.3g} over the last tenth, noise {self.elbo_noise:.3g})"
                )
            return out
        if self.max_rhat > RHAT_MAX:
            out.append(f"max R-hat {self.max_rhat:.3f} > {RHAT_MAX}")
        if self.min_ess_bulk < ESS_MIN:
            out.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {ESS_MIN:.0f}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        if self.min_bfmi < BFMI_MIN:
            out.append(f"min E-BFMI {self.min_bfmi:.2f} < {BFMI_MIN}")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Diagnostics:
        return cls(**json.loads(text))

    def report(self) -> str:
        """Human-readable multi-line report."""
        if self.approximate:
            return self._approx_report()
        status = "PASS" if self.passed else "FAIL"
        lines = [
            f"convergence gate: {status} (R-hat <= {RHAT_MAX}, bulk ESS >= {ESS_MIN:.0f}, "
            f"no divergences, E-BFMI >= {BFMI_MIN})",
            f"  chains x draws     {self.n_chains} x {self.n_draws}",
            f"  max R-hat          {self.max_rhat:.4f}",
            f"  min bulk ESS       {self.min_ess_bulk:.0f}",
            f"  min tail ESS       {self.min_ess_tail:.0f}",
            f"  divergences        {self.divergences}",
            f"  min E-BFMI         {self.min_bfmi:.3f}",
            f"  sampling time      {self.sampling_seconds:.1f} s",
        ]
        for f in self.failures():
            lines.append(f"  failed: {f}")
        if self.worst:
            lines.append("  worst parameters (lowest bulk ESS):")
            w = pd.DataFrame(self.worst)
            lines.extend("    " + ln for ln in w.to_string(index=False).splitlines())
        return "\n".join(lines)

    def _approx_report(self) -> str:
        status = "converged" if self.passed else "NOT CONVERGED"
        lines = [
            f"approximate inference: {self.inference.upper()} (mean-field), {status}; the MCMC "
            "gate (R-hat, ESS, divergences, E-BFMI) does not apply",
            "  bands are narrower than the posterior's (docs/performance.md); refit with NUTS "
            "(--inference nuts) for results to report",
            f"  pseudo-chains x draws {self.n_chains} x {self.n_draws} (independent draws)",
            f"  optimisation steps {self.iterations}",
            f"  loss change, last tenth {self.elbo_improvement:.3g} (noise {self.elbo_noise:.3g})",
            f"  fitting time       {self.sampling_seconds:.1f} s",
        ]
        lines.extend(f"  failed: {f}" for f in self.failures())
        return "\n".join(lines)


def approx_diagnostics(
    idata: xr.DataTree,
    *,
    inference: str,
    iterations: int,
    converged: bool,
    improvement: float,
    noise: float,
    seconds: float,
) -> Diagnostics:
    """The record of an approximate fit (:func:`obscale_bayes.fit.sampling.approximate`): no
    R-hat or ESS (independent draws: the ESS is the number of draws), the plateau test."""
    post = idata["posterior"].dataset
    n = int(post.sizes["chain"]) * int(post.sizes["draw"])
    return Diagnostics(
        max_rhat=float("nan"),
        min_ess_bulk=float(n),
        min_ess_tail=float(n),
        divergences=0,
        n_draws=int(post.sizes["draw"]),
        n_chains=int(post.sizes["chain"]),
        min_bfmi=float("nan"),
        sampling_seconds=float(seconds),
        inference=inference,
        iterations=int(iterations),
        elbo_improvement=float(improvement),
        elbo_noise=float(noise),
        elbo_converged=bool(converged),
    )


def bfmi(energy: np.ndarray) -> np.ndarray:
    r"""E-BFMI per chain from the energy trace ``(chain, draw)``.

    :math:`\mathrm{E\text{-}BFMI} = \frac{\sum_n (E_n - E_{n-1})^2 / N}{\mathrm{Var}(E)}`;
    below 0.3 the momentum resampling explores the energy distribution poorly.
    """
    num = np.sum(np.diff(energy, axis=1) ** 2, axis=1) / energy.shape[1]
    den = np.var(energy, axis=1)
    return num / den


def gate_vars(post: xr.Dataset) -> list[str]:
    """The :data:`GATE_VARS` of a posterior; with one slope for all families (no ``slope_sd``)
    ``slope`` is ``slope_mean`` repeated per family and is left out (rows of the same draws)."""
    shared = "slope_sd" not in post.data_vars
    return [v for v in GATE_VARS if v in post.data_vars and not (shared and v == "slope")]


def gate_summary(idata: xr.DataTree) -> pd.DataFrame:
    """``az.summary`` (diagnostics) of the :data:`GATE_VARS` in the posterior, one row per entry.

    Deterministic constants (e.g. the fixed anchor entries of ``loading``) have no variance and a
    NaN R-hat; their rows are dropped.
    """
    names = gate_vars(idata["posterior"].dataset)
    with warnings.catch_warnings():
        # ArviZ warns (RuntimeWarning) on the constant entries of deterministics.
        warnings.simplefilter("ignore", RuntimeWarning)
        summ = az.summary(idata, var_names=names, kind="diagnostics")
    return summ.dropna(subset=["r_hat"])


def compute_diagnostics(
    idata: xr.DataTree,
    sampling_seconds: float = float("nan"),
    n_worst: int = 8,
    summary: pd.DataFrame | None = None,
) -> Diagnostics:
    """Compute R-hat, ESS, divergences and E-BFMI over :data:`GATE_VARS` of a posterior tree.

    ``summary`` is a :func:`gate_summary` of ``idata`` already at hand (saves recomputing it).
    """
    post = idata["posterior"].dataset
    summ = gate_summary(idata) if summary is None else summary
    stats = idata["sample_stats"].dataset
    div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    if "energy" in stats:
        min_bfmi = float(np.min(bfmi(stats["energy"].to_numpy())))
    else:
        min_bfmi = float("nan")
    worst = summ.sort_values("ess_bulk").head(n_worst)
    worst_rows = [
        {
            "parameter": str(i),
            "ess_bulk": round(float(r["ess_bulk"]), 1),
            "ess_tail": round(float(r["ess_tail"]), 1),
            "r_hat": round(float(r["r_hat"]), 4),
        }
        for i, r in worst.iterrows()
    ]
    return Diagnostics(
        max_rhat=float(summ["r_hat"].max()),
        min_ess_bulk=float(summ["ess_bulk"].min()),
        min_ess_tail=float(summ["ess_tail"].min()),
        divergences=div,
        n_draws=int(post.sizes["draw"]),
        n_chains=int(post.sizes["chain"]),
        min_bfmi=min_bfmi,
        sampling_seconds=float(sampling_seconds),
        worst=worst_rows,
    )
