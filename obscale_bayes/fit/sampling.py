"""The inference backends behind :meth:`obscale_bayes.fit.fitted.CapabilityModel.fit`.

Two NUTS samplers return the sampler's ``xarray.DataTree`` (``posterior`` and ``sample_stats``
at least); the fitted-model class keeps those two groups.  nutpie is called directly (its
compiled model, its own threads); PyMC's sampler is the fallback for checks against a second
implementation.  The same seed gives the same draws with either backend (not across backends).

:func:`approximate` is the fast approximate mode for tables too big for NUTS (``inference =
"advi"``): PyMC's mean-field ADVI, then independent draws from the fitted Gaussian, shaped
``(chain, draw)`` like a sampler's so that every forecast and check reads them the same way.
Its figures against NUTS (speed, forecasts, coverage and width) are in ``docs/performance.md``:
mean-field bands are narrower than the posterior's, by how much is measured there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from obscale_bayes.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pymc as pm
    import xarray as xr

__all__ = [
    "ADVI_ITERATIONS",
    "DEFAULT_TARGET_ACCEPT",
    "INFERENCES",
    "RETRY_TARGET_ACCEPT",
    "SAMPLERS",
    "Approximation",
    "approximate",
    "check_inference",
    "check_sampler",
    "sample",
]

#: NUTS implementations :func:`sample` runs.
SAMPLERS = ("nutpie", "pymc")
#: Inference methods of a fit: NUTS (exact up to Monte Carlo error, the default) and mean-field
#: ADVI (approximate, for big tables).
INFERENCES = ("nuts", "advi")
#: Optimisation steps of ADVI unless told otherwise.  Chosen on the shipped table and on
#: simulated tables up to 5000 x 50 (benchmarks/scale.py): the ELBO plateaus within ~15 000
#: steps at Adam's learning rate 0.01; the rest is margin, checked by the plateau test of
#: :class:`Approximation`.
ADVI_ITERATIONS = 30_000
#: Adam learning rate of ADVI.
ADVI_LEARNING_RATE = 0.01
#: NUTS target acceptance of every capability fit unless told otherwise.  0.95, not the usual
#: 0.8-0.9: at 0.9 the default fit left 1-5 divergences on some seeds and tables (shipped table
#: seed 0: 3; OLL v2: 5), at 0.95 with the non-centred default none on the training-only probes
#: that fixed it (benchmarks/gate_seeds.py has the five-seed figures).  It costs ~1.3x the time.
DEFAULT_TARGET_ACCEPT = 0.95
#: Target acceptance of the one retry of a fit that fails its gate (``retry=True``).
RETRY_TARGET_ACCEPT = 0.99


def check_sampler(sampler: str) -> str:
    """Validate a sampler name (one of :data:`SAMPLERS`)."""
    if sampler not in SAMPLERS:
        raise UsageError(f"sampler: unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
    return sampler


def check_inference(inference: str) -> str:
    """Validate an inference name (one of :data:`INFERENCES`)."""
    if inference not in INFERENCES:
        raise UsageError(
            f"inference: unknown method '{inference}'; use one of {', '.join(INFERENCES)}"
        )
    return inference


def _nutpie(model, draws, tune, chains, seed, target_accept, progress, cores):
    import nutpie

    compiled = nutpie.compile_pymc_model(model)
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        cores=cores,
        target_accept=target_accept,
        progress_bar=progress,
    )


def _pymc(model, draws, tune, chains, seed, target_accept, progress, cores):
    import pymc as pm

    with model:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler="pymc",
            target_accept=target_accept,
            progressbar=progress,
            compute_convergence_checks=False,
        )


def sample(
    model: pm.Model,
    sampler: str,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    target_accept: float,
    progress: bool,
    cores: int,
) -> xr.DataTree:
    """Run NUTS on ``model`` with the chosen backend.

    Parameters
    ----------
    model : pymc.Model
        The model to sample (from :func:`obscale_bayes.model.build.build_model`).
    sampler : {"nutpie", "pymc"}
        Backend.
    draws, tune, chains : int
        Posterior draws and warm-up steps per chain, number of chains.
    seed : int
        Random seed (same seed and backend, same draws).
    target_accept : float
        NUTS target acceptance rate (step-size adaptation).
    progress : bool
        Show the backend's progress bar.
    cores : int
        Chains run in parallel (threads for nutpie, processes for PyMC).

    Returns
    -------
    xarray.DataTree
        The backend's result as is.
    """
    run = _nutpie if check_sampler(sampler) == "nutpie" else _pymc
    return run(model, draws, tune, chains, seed, target_accept, progress, cores)


@dataclass
class Approximation:
    r"""What :func:`approximate` returns: the draws and the optimisation's record.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` with dims ``(chain, draw, ...)`` of independent draws from the fitted
        Gaussian (``chains x draws`` of them; the chains are a reshape, not separate runs).
    loss : numpy.ndarray
        Negative ELBO per optimisation step.
    converged : bool
        The plateau test: the mean loss of the last tenth of the steps is below the mean of
        the tenth before it by no more than three standard errors of that difference
        (:math:`3\,s\sqrt{2/n}`, ``s`` the loss's step-to-step standard deviation over the last
        tenth, ``n`` the steps in a tenth): a loss still falling fails it; raise
        ``iterations``.
    improvement : float
        Mean loss of the second-to-last tenth minus that of the last tenth.
    noise : float
        Standard deviation of the loss over the last tenth.
    """

    tree: xr.DataTree
    loss: np.ndarray
    converged: bool
    improvement: float
    noise: float


def plateau(loss: np.ndarray) -> tuple[bool, float, float]:
    """The plateau test of :class:`Approximation` on a loss trace: ``(converged, improvement,
    noise)``."""
    import numpy as np

    loss = np.asarray(loss, dtype=float)
    n = max(len(loss) // 10, 1)
    if len(loss) < 2 * n or not np.all(np.isfinite(loss[-2 * n :])):
        return False, float("nan"), float("nan")
    last, prev = loss[-n:], loss[-2 * n : -n]
    improvement = float(prev.mean() - last.mean())
    noise = float(last.std())
    return bool(improvement <= 3.0 * noise * np.sqrt(2.0 / n)), improvement, noise


def approximate(
    model: pm.Model,
    *,
    draws: int,
    chains: int,
    seed: int,
    iterations: int = ADVI_ITERATIONS,
    progress: bool = False,
) -> Approximation:
    """Mean-field ADVI on ``model`` (PyMC's ``pm.fit``, Adam at :data:`ADVI_LEARNING_RATE`),
    then ``chains * draws`` independent draws of the fitted approximation.

    Parameters
    ----------
    model : pymc.Model
        The model (from :func:`obscale_bayes.model.build.build_model`).
    draws, chains : int
        Draws per pseudo-chain and number of pseudo-chains.
    seed : int
        Random seed of the optimisation and of the draws (same seed, same draws).
    iterations : int
        Optimisation steps.
    progress : bool
        Show PyMC's progress bar.
    """
    import numpy as np
    import pymc as pm
    import xarray as xr

    with model:
        approx = pm.fit(
            n=int(iterations),
            method="advi",
            random_seed=int(seed),
            progressbar=progress,
            obj_optimizer=pm.adam(learning_rate=ADVI_LEARNING_RATE),
        )
        raw = approx.sample(int(draws) * int(chains), random_seed=int(seed) + 1)
    post = raw["posterior"].dataset
    # One long "chain" of independent draws, cut into `chains` pieces of `draws` each.
    post = post.isel(chain=0, drop=True)
    post = post.assign_coords(draw=np.arange(post.sizes["draw"]))
    post = post.coarsen(draw=int(draws)).construct(draw=("chain", "draw"))
    post = post.assign_coords(chain=np.arange(int(chains)), draw=np.arange(int(draws)))
    post = post.transpose("chain", "draw", ...)
    loss = np.asarray(approx.hist, dtype=float)
    converged, improvement, noise = plateau(loss)
    tree = xr.DataTree.from_dict({"posterior": post})
    return Approximation(tree, loss, converged, improvement, noise)
