"""Helpers for tests, for users' own tests and for the notebooks' fast mode.

Three kinds of fitted model, from cheapest to most real:

* :func:`truth_fit`: a fit whose posterior is the simulation's truth in every draw (no
  sampling at all): checks of code that reads a posterior (forecasts, PPC, PIT, plots).
* :func:`small_fit`: real NUTS at small draw counts on a (simulated or shipped) table.
* :func:`synthetic_table`: a table simulated from the model with the shipped table's layout,
  optionally restricted to some families and benchmarks.

Everything is seeded: the same arguments give the same objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import ModelSpec, load_spec

__all__ = ["TRUTH_VARS", "observed_data_tree", "small_fit", "synthetic_table", "truth_fit"]

#: Posterior variables a :func:`truth_fit` carries (what the NumPy consumers read per cell).
TRUTH_VARS = ("capability", "loading", "intercept", "floor", "misfit", "logit_misfit")

#: A small, varied set of families of the shipped table (40 models, known and latent FLOPs).
SMALL_FAMILIES = ("Llama-2", "Pythia", "Qwen1.5", "Mistral", "OPT", "Gemma", "Falcon", "BLOOM")


def synthetic_table(
    spec: ModelSpec | str | None = None,
    seed: int = 0,
    *,
    families: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    template: BenchmarkData | None = None,
) -> tuple[BenchmarkData, xr.Dataset]:
    """A table simulated from the model, with the layout (models, FLOPs, missing cells) of
    ``template`` (default: the shipped table), and its true parameters."""
    tmpl = template if template is not None else load_shipped()
    if families is not None:
        keep = tmpl.models.loc[tmpl.models["family"].isin(list(families)), "model"].tolist()
        tmpl = tmpl.subset(models=keep)
    if benchmarks is not None:
        tmpl = tmpl.subset(benchmarks=list(benchmarks))
    return simulate(tmpl, spec, seed=seed)


def observed_data_tree(fit: CapabilityModel) -> xr.DataTree:
    """The ``observed_data`` group a sampled fit carries, built from the fit's inputs."""
    inp = fit.inputs
    obs = xr.Dataset(
        {"score": ("obs", inp.y)},
        coords={
            "obs": np.arange(len(inp.y)),
            "obs_model": ("obs", np.asarray(inp.model_ids)[inp.obs_model]),
            "obs_benchmark": ("obs", np.asarray(inp.benchmark_ids)[inp.obs_bench]),
        },
    )
    return xr.DataTree(obs)


def truth_fit(
    data: BenchmarkData,
    truth: xr.Dataset,
    spec: ModelSpec | str | None = None,
    draws: int = 40,
    variables: Sequence[str] | None = None,
) -> CapabilityModel:
    """A fit whose posterior is ``truth`` in every one of ``draws`` draws (one chain).

    ``variables`` selects the posterior variables (default :data:`TRUTH_VARS`; pass
    ``list(truth.data_vars)`` for every parameter, e.g. to forecast from compute).
    """
    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    names = [v for v in (variables or TRUTH_VARS) if v in truth]
    post = xr.concat([truth[names]] * draws, dim="draw").expand_dims(chain=[0])
    post = post.assign_coords(draw=np.arange(draws))
    fit = CapabilityModel(spec, data, xr.DataTree.from_dict({"posterior": post}), None, {})
    fit.idata["observed_data"] = observed_data_tree(fit)
    return fit


def small_fit(
    data: BenchmarkData,
    spec: ModelSpec | str | None = None,
    *,
    draws: int = 200,
    tune: int = 300,
    chains: int = 2,
    seed: int = 0,
) -> CapabilityModel:
    """Real NUTS (nutpie) at small draw counts: for tests that need a sampled posterior."""
    return CapabilityModel.fit(
        data, spec, draws=draws, tune=tune, chains=chains, seed=seed, progress=False
    )
