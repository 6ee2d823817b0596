"""Synthetic table layouts of any size, for scaling benchmarks and tests of big-table fits.

:func:`synthetic_layout` makes the *shape* of a leaderboard (models in families, FLOPs, benchmark
metadata, which cells are scored) with placeholder scores; :func:`synthetic_table` fills its
cells from the capability model with :func:`obscale_bayes.model.simulate.simulate`.  What is
taken from the shipped base table (``load_shipped()``, 128 models in 40 families):

- family sizes are drawn from its family sizes (1-8 models, mean 3.2), so a table of
  ``n_models`` has about ``n_models / 3.2`` families;
- log-FLOPs from its models' log-FLOPs (resampled with a N(0, 0.3) jitter in log10 units), sorted
  within a family (its larger members used more compute); the same share of models as there
  (16 / 128) has unknown FLOPs;
- the first eight benchmarks are its eight standard benchmarks with their metadata (so the
  default spec's anchors are present and the realistic true loadings apply; with fewer than
  eight, the anchors MMLU, HellaSwag, HumanEval come first); benchmark 9 on is
  ``sim_009, sim_010, ...`` with chance floors and item counts cycled from a mix of formats
  (free response, 4-, 5- and 10-way choice, a fitted floor) and loadings drawn from the spec's
  priors by :func:`~obscale_bayes.model.simulate.simulate`.

Missing cells are missing completely at random at the rate ``missing``, except that every model
keeps at least two scores and every benchmark at least three (the shipped table itself has 4%
of its cells missing, in blocks; leaderboards with many benchmarks are sparser).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.errors import UsageError

__all__ = ["synthetic_layout", "synthetic_table"]

# Chance floors and item counts of benchmarks beyond the shipped eight (cycled).
_FLOORS = (0.0, 0.25, 0.2, 0.1, 0.5, np.nan, 0.25, 0.0)
_ITEMS = (500, 2000, 800, 12000, 300, 1500, 700, 5000)
_UNKNOWN_FLOPS_SHARE = 16 / 128


def synthetic_layout(
    n_models: int, n_benchmarks: int, *, missing: float = 0.4, seed: int = 0
) -> BenchmarkData:
    """A table layout of ``n_models x n_benchmarks`` (scores 0.5 as placeholders).

    Parameters
    ----------
    n_models : int
        Models (>= 8).
    n_benchmarks : int
        Benchmarks (>= 4); the first ``min(n_benchmarks, 8)`` are the shipped ones.
    missing : float
        Share of cells without a score, in [0, 0.8].
    seed : int
        Seed of the layout (same seed, same layout).
    """
    if n_models < 8 or n_benchmarks < 4:
        raise UsageError(
            f"layout: need >= 8 models and >= 4 benchmarks, got {n_models} x {n_benchmarks}"
        )
    if not 0.0 <= missing <= 0.8:
        raise UsageError(f"layout: missing share {missing} is outside [0, 0.8]")
    rng = np.random.default_rng(seed)
    ship = load_shipped()
    sizes = ship.models.groupby("family").size().to_numpy()
    fam_sizes: list[int] = []
    while sum(fam_sizes) < n_models:
        fam_sizes.append(int(rng.choice(sizes)))
    fam_sizes[-1] -= sum(fam_sizes) - n_models
    fam_sizes = [s for s in fam_sizes if s > 0]
    log_f = np.log10(ship.models["flops_1e21"].dropna().to_numpy())
    rows = []
    for f, size in enumerate(fam_sizes):
        lf = np.sort(rng.choice(log_f, size) + rng.normal(0.0, 0.3, size))
        for i, x in enumerate(lf):
            rows.append(
                {
                    "model": f"sim-fam{f:04d}-m{i}",
                    "family": f"fam{f:04d}",
                    "kind": "base",
                    "params_b": np.nan,
                    "tokens_t": np.nan,
                    "flops_1e21": float(10.0**x),
                }
            )
    models = pd.DataFrame(rows)
    unknown = rng.random(len(models)) < _UNKNOWN_FLOPS_SHARE
    models.loc[unknown, "flops_1e21"] = np.nan

    bm = ship.benchmarks
    if n_benchmarks < len(bm):  # fewer than the shipped eight: the default anchors first
        first = ["mmlu", "hellaswag", "humaneval"]
        order = first + [b for b in bm["benchmark"] if b not in first]
        bm = bm.set_index("benchmark").loc[order].reset_index()
    bm = bm.head(min(n_benchmarks, len(bm))).copy()
    extra = []
    for j in range(len(bm), n_benchmarks):
        c = j - len(ship.benchmarks)
        bid = f"sim_{j + 1:03d}"
        extra.append(
            {
                "benchmark": bid,
                "display_name": bid.upper(),
                "group": "standard",
                "floor": _FLOORS[c % len(_FLOORS)],
                "n_items": float(_ITEMS[c % len(_ITEMS)]),
                "metric_min": 0.0,
                "metric_max": 1.0,
                "unit": "fraction",
            }
        )
    bm = pd.concat([bm, pd.DataFrame(extra)], ignore_index=True) if extra else bm
    for col in ship.benchmarks.columns:
        if col not in bm:
            bm[col] = np.nan

    scored = rng.random((len(models), len(bm))) >= missing
    for i in np.flatnonzero(scored.sum(axis=1) < 2):  # every model keeps two scores
        scored[i, rng.choice(len(bm), 2, replace=False)] = True
    for j in np.flatnonzero(scored.sum(axis=0) < 3):  # every benchmark keeps three
        scored[rng.choice(len(models), 3, replace=False), j] = True
    mi, bj = np.nonzero(scored)
    scores = pd.DataFrame(
        {
            "model": models["model"].to_numpy()[mi],
            "benchmark": bm["benchmark"].to_numpy()[bj],
            "value": 0.5,
        }
    )
    return BenchmarkData(
        models,
        scores,
        bm[ship.benchmarks.columns],
        source=f"synthetic layout {n_models} x {n_benchmarks} ({missing:.0%} missing, seed {seed})",
    )


def synthetic_table(
    n_models: int,
    n_benchmarks: int,
    *,
    missing: float = 0.4,
    seed: int = 0,
    spec=None,
):
    """:func:`synthetic_layout` with scores simulated from the model (``spec``, default the
    default spec).  Returns ``(data, truth)`` as :func:`~obscale_bayes.model.simulate.simulate`."""
    from obscale_bayes.model.simulate import simulate

    return simulate(synthetic_layout(n_models, n_benchmarks, missing=missing, seed=seed), spec,
                    seed=seed)  # fmt: skip
