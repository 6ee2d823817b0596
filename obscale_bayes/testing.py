"""Helpers for tests, for users' own tests and for the notebooks' fast mode.

Three kinds of fitted model, from cheapest to most real:

* :func:`truth_fit`: a fit whose posterior is the simulation's truth in every draw (no
  sampling at all): checks of code that reads a posterior (forecasts, PPC, PIT, plots).
* :func:`prior_fit`: a "mock-sampled" fit whose posterior is draws from the model's prior
  (``pm.sample_prior_predictive`` on the real graph, 2 chains): every variable a sampled fit
  has, in seconds, for code paths that need a complete posterior but not a good one.
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
from obscale_bayes.fit.diagnostics import compute_diagnostics
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.model.build import build_model
from obscale_bayes.model.simulate import simulate
from obscale_bayes.spec.spec import ModelSpec, load_spec

__all__ = [
    "SMALL_FAMILIES",
    "TRUTH_VARS",
    "hold_out_scores",
    "observed_data_tree",
    "prior_fit",
    "shipped_subset",
    "small_fit",
    "synthetic_table",
    "truth_fit",
    "uncensored_cells",
]

#: Posterior variables a :func:`truth_fit` carries (what the NumPy consumers read per cell).
TRUTH_VARS = (
    "capability", "loading", "intercept", "floor", "misfit", "logit_misfit", "family_offset",
    "benchmark_slope", "compute_axis",
)  # fmt: skip

#: Families of a ~50-model subset of the shipped table (small fits, several sizes each).
SMALL_FAMILIES = ("Pythia", "OPT", "Qwen1.5", "BLOOM", "GPT-Neo/J", "Llama", "Falcon", "Llama-2")


def shipped_subset(families: Sequence[str] = SMALL_FAMILIES) -> BenchmarkData:
    """The shipped table restricted to the models of ``families`` (table order kept)."""
    d = load_shipped()
    return d.subset(models=d.models.loc[d.models["family"].isin(list(families)), "model"].tolist())


def hold_out_scores(
    data: BenchmarkData, model: str, given: Sequence[str]
) -> tuple[BenchmarkData, BenchmarkData]:
    """(``data`` without ``model``, ``model`` with only its ``given`` scores): the
    fill-in-the-blanks situation of a new model."""
    s = data.scores
    train = BenchmarkData(
        data.models[data.models["model"] != model],
        s[s["model"] != model],
        data.benchmarks,
        source="train",
    )
    new = BenchmarkData(
        data.models[data.models["model"] == model],
        s[(s["model"] == model) & s["benchmark"].isin(list(given))],
        data.benchmarks,
        source="new.csv",
    )
    return train, new


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


def uncensored_cells(fit: CapabilityModel) -> np.ndarray:
    """Mask of observed cells strictly inside (0, 1): the simulation clips to the metric range,
    and a clipped (censored) cell has no continuous PIT."""
    y = fit.idata["observed_data"].dataset["score"].to_numpy()
    return (y > 0) & (y < 1)


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


def prior_fit(
    data: BenchmarkData,
    spec: ModelSpec | str | None = None,
    *,
    draws: int = 50,
    chains: int = 2,
    seed: int = 0,
) -> CapabilityModel:
    """A fit whose "posterior" is ``chains x draws`` prior draws of the model for ``data``.

    It has the posterior variables, ``sample_stats`` (no divergences) and diagnostics of a real
    fit, so it loads, saves, forecasts and plots like one; its numbers mean nothing.
    """
    import pymc as pm

    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    model = build_model(data, spec)
    with model:
        prior = pm.sample_prior_predictive(draws=draws * chains, random_seed=seed)
    free = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    ds = prior["prior"].dataset[[n for n in free if n in prior["prior"].dataset]]
    ds = ds.isel(chain=0, drop=True).rename(draw="flat")
    ds = (
        ds.assign_coords(
            chain=("flat", np.repeat(np.arange(chains), draws)),
            draw=("flat", np.tile(np.arange(draws), chains)),
        )
        .set_index(flat=["chain", "draw"])
        .unstack("flat")
        .transpose("chain", "draw", ...)
    )
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((chains, draws), dtype=bool)),
            "energy": (("chain", "draw"), np.random.default_rng(seed).normal(size=(chains, draws))),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    tree = xr.DataTree.from_dict({"posterior": ds, "sample_stats": stats})
    meta = {"sampler": "prior (testing.prior_fit)", "seed": int(seed), "draws": int(draws),
            "chains": int(chains), "data_fingerprint": data.fingerprint()}  # fmt: skip
    fit = CapabilityModel(spec, data, tree, compute_diagnostics(tree), meta)
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
