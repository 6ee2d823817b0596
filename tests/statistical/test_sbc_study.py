"""Simulation-based calibration, end to end at a few replications (slow: real NUTS fits).

Three replications of a 16-model layout drawn from the default model's prior predictive, each
with a model and a cell held out, fitted with nutpie through ``run_fits`` (a process pool) and
ranked in the worker.  Three replications cannot test uniformity; this keeps the pipeline
(``studies/sbc.py``'s, at its full size in ``docs/checks.md``) from rotting: every group gets
ranks in 0..L from every fit, the gate is recorded, and the tests run on them.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from obscale_bayes.checks.sbc import (
    FORECAST_GROUPS,
    PARAMETER_GROUPS,
    group_tests,
    hold_out,
    prior_replications,
    rank_matrix,
    sbc_post,
    sbc_template,
)
from obscale_bayes.fit.runner import FitJob, run_fits

L = 19


@pytest.mark.slow
def test_sbc_replications_end_to_end(shipped):
    template = sbc_template(shipped, 16, 5, seed=1)
    reps = prior_replications(template, "default", 3, seed=1)
    jobs = []
    for r in reps:
        h = hold_out(r, seed=1)
        post = functools.partial(sbc_post, truth=r.truth, cells=h.cells, n_ranks=L, seed=r.index)
        kw = {"draws": 100, "tune": 150, "chains": 2, "seed": r.index, "cores": 1}
        jobs.append(FitJob(f"rep{r.index}", h.train, "default", kw, post))
    res = run_fits(jobs, max_workers=2, on_error="collect", progress=False, warm_cache=False)
    assert all(r.ok for r in res.values()), [r.error for r in res.values()]
    ranks = [r.value for r in res.values()]
    for r in res.values():
        assert r.diagnostics is not None and r.diagnostics.n_draws == 100
    n_models = len(template.model_ids)
    for g in PARAMETER_GROUPS + FORECAST_GROUPS:
        labels, mat = rank_matrix(ranks, g)
        if g in PARAMETER_GROUPS and not any(g in r.truth and r.truth[g].size for r in reps):
            # no model of unknown FLOPs in this layout; no slope_sd with the shared slope
            assert g in ("x_latent", "slope_sd") and mat.shape == (3, 0), g
            continue
        assert np.isfinite(mat).any(axis=1).all(), g  # every fit ranks every group
        fin = mat[np.isfinite(mat)]
        assert fin.min() >= 0 and fin.max() <= L and np.all(fin == np.round(fin))
        t = group_tests(mat, L, bins=5)
        assert 0 <= t["chi2_p"] <= 1 and 0 <= t["ks_p"] <= 1 and t["reps"] == 3
    # the held-out model's capabilities drop out of its fit; each fit ranks the others
    _, cap = rank_matrix(ranks, "capability")
    assert np.all(np.isfinite(cap).sum(axis=1) == 3 * (n_models - 1))
