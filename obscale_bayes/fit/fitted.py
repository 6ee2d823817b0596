"""The fitted-model class: ``CapabilityModel.fit / forecast / save / load``.

A fit is one ``xarray.DataTree`` (written as NetCDF with h5netcdf) holding the posterior, the
sampler statistics, the observed data and a ``obscale`` group with the spec, the training data,
the package version and the convergence diagnostics, each as JSON.  Reloading it in a fresh
process rebuilds everything a forecast needs, so forecasts with the same seed are identical.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from obscale_bayes import __version__
from obscale_bayes.validation import check_ci
from obscale_bayes.data.tables import BenchmarkData
from obscale_bayes.fit.diagnostics import Diagnostics, compute_diagnostics
from obscale_bayes.errors import FitFileError, UsageError
from obscale_bayes.forecast.compute import (
    PosteriorArrays,
    forecast_compute_draws,
    posterior_arrays,
    summarize_draws,
)
from obscale_bayes.model.build import ModelInputs, build_model, prepare_inputs
from obscale_bayes.spec.spec import ModelSpec, load_spec

_FORMAT = "obscale_bayes.fit/1"
SAMPLERS = ("nutpie", "pymc")


@dataclass(frozen=True)
class Forecast:
    """A forecast: a tidy summary table and the predictive draws behind it.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (model, benchmark): ``model, family, flops, benchmark, mean, median,
        lower, upper, ci`` (and ``observed`` for forecasts from scores).
    draws : xarray.DataArray
        Predictive score draws with dims ``(sample, model, benchmark)`` in metric units.
    capability : xarray.DataArray
        Capability draws with dims ``(sample, model, factor)``.
    """

    table: pd.DataFrame
    draws: xr.DataArray
    capability: xr.DataArray

    def records(self) -> list[dict]:
        cols = ["model", "family", "flops", "benchmark", "mean", "median", "lower", "upper", "ci"]
        df = self.table[cols].astype(object).where(self.table[cols].notna(), None)
        return df.to_dict(orient="records")


def _sample_nutpie(model, draws, tune, chains, seed, target_accept, progress, cores):
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


def _sample_pymc(model, draws, tune, chains, seed, target_accept, progress, cores):
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


class CapabilityModel:
    """A fitted hierarchical capability model (see :mod:`obscale_bayes.model.build`).

    Build one with :meth:`fit` or :meth:`load`; do not call the constructor directly.
    """

    def __init__(
        self,
        spec: ModelSpec,
        data: BenchmarkData,
        idata: xr.DataTree,
        diagnostics: Diagnostics,
        meta: dict,
    ):
        self.spec = spec
        self.data = data
        self.idata = idata
        self.diagnostics = diagnostics
        self.meta = meta

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        data: BenchmarkData,
        spec: ModelSpec | str | None = None,
        *,
        draws: int = 3000,
        tune: int = 1500,
        chains: int = 4,
        seed: int = 0,
        sampler: str = "nutpie",
        target_accept: float = 0.9,
        progress: bool = True,
        cores: int | None = None,
    ) -> CapabilityModel:
        """Sample the posterior of the model for ``data`` under ``spec``.

        Parameters
        ----------
        data : BenchmarkData
            Training table (needs families; FLOPs may be missing for some models).
        spec : ModelSpec, str or None
            Spec object, a spec file path, a variant name in ``models/``, or None (default).
        draws, tune, chains : int
            Posterior draws and warm-up steps per chain, number of chains.
        seed : int
            Random seed; the same seed gives identical draws.
        sampler : {"nutpie", "pymc"}
            NUTS implementation.
        """
        if not isinstance(spec, ModelSpec):
            spec = load_spec(spec)
        if sampler not in SAMPLERS:
            raise UsageError(
                f"--sampler: unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}"
            )
        for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
            if int(v) < 1:
                raise UsageError(f"--{name} must be a positive integer, got {v}")
        cores = cores or min(chains, os.cpu_count() or 1)
        inputs = prepare_inputs(data, spec)
        model = build_model(data, spec, inputs=inputs)
        if progress:
            print(
                f"fitting '{spec.name}' on {len(inputs.model_ids)} models x "
                f"{len(inputs.benchmark_ids)} benchmarks ({len(inputs.y)} scores) with {sampler}: "
                f"{chains} chains x ({tune} tune + {draws} draws)",
                file=sys.stderr,
            )
        t0 = time.perf_counter()
        run = _sample_nutpie if sampler == "nutpie" else _sample_pymc
        raw = run(
            model,
            int(draws),
            int(tune),
            int(chains),
            int(seed),
            float(target_accept),
            progress,
            cores,
        )
        seconds = time.perf_counter() - t0
        keep = {k: raw[k].dataset for k in ("posterior", "sample_stats") if k in raw.children}
        tree = xr.DataTree.from_dict(keep)
        diag = compute_diagnostics(tree, sampling_seconds=seconds)
        meta = {
            "format": _FORMAT,
            "package_version": __version__,
            "sampler": sampler,
            "seed": int(seed),
            "draws": int(draws),
            "tune": int(tune),
            "chains": int(chains),
            "data_fingerprint": data.fingerprint(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        obs = xr.Dataset(
            {"score": ("obs", inputs.y)},
            coords={
                "obs": np.arange(len(inputs.y)),
                "obs_model": ("obs", np.asarray(inputs.model_ids)[inputs.obs_model]),
                "obs_benchmark": ("obs", np.asarray(inputs.benchmark_ids)[inputs.obs_bench]),
            },
        )
        tree["observed_data"] = xr.DataTree(obs)
        return cls(spec, data, tree, diag, meta)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit as one NetCDF file (atomically: no partial file on failure)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.idata.copy()
        tree["obscale"] = xr.DataTree(
            xr.Dataset(
                {
                    "spec_json": ((), self.spec.to_json()),
                    "data_json": ((), json.dumps(self.data.to_json_dict())),
                    "diagnostics_json": ((), self.diagnostics.to_json()),
                    "meta_json": ((), json.dumps(self.meta)),
                }
            )
        )
        tree.attrs["obscale_format"] = _FORMAT
        tree.attrs["obscale_package_version"] = __version__
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            tree.to_netcdf(tmp, engine="h5netcdf")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CapabilityModel:
        """Read a fit written by :meth:`save`; a clear error for anything else."""
        p = Path(path)
        if not p.exists():
            raise FitFileError(
                f"{p}: no such fit file; create one with 'obscale-bayes fit --out {p}'"
            )
        if p.is_dir():
            raise FitFileError(f"{p}: is a directory, not a fit file (.nc)")
        try:
            tree = xr.open_datatree(p, engine="h5netcdf")
            tree.load()
        except Exception as exc:  # h5py/netCDF raise many types for a corrupt file
            raise FitFileError(
                f"{p}: not a readable NetCDF fit file ({type(exc).__name__}); refit with 'obscale-bayes fit'"
            ) from None
        if tree.attrs.get("obscale_format") != _FORMAT or "obscale" not in tree.children:
            raise FitFileError(
                f"{p}: a NetCDF file, but not an obscale-bayes fit; refit with 'obscale-bayes fit'"
            )
        try:
            g = tree["obscale"].dataset
            spec = ModelSpec.from_json(str(g["spec_json"].item()), source=f"{p} (stored spec)")
            data = BenchmarkData.from_json_dict(json.loads(str(g["data_json"].item())))
            diag = Diagnostics.from_json(str(g["diagnostics_json"].item()))
            meta = json.loads(str(g["meta_json"].item()))
            # The stored spec exactly as written: ModelSpec.from_json fills keys added since with
            # today's defaults, which must not make an old fit look current.
            meta["stored_spec"] = json.loads(str(g["spec_json"].item()))
        except (KeyError, ValueError, TypeError) as exc:
            raise FitFileError(
                f"{p}: fit file is damaged ({exc}); refit with 'obscale-bayes fit'"
            ) from None
        idata = tree.copy()
        del idata["obscale"]
        return cls(spec, data, idata, diag, meta)

    # ---------------------------------------------------------------- derived state
    @cached_property
    def inputs(self) -> ModelInputs:
        return prepare_inputs(self.data, self.spec)

    @cached_property
    def posterior(self) -> PosteriorArrays:
        inp = self.inputs
        return posterior_arrays(
            self.idata,
            inp.inv_n,
            inp.metric_min,
            inp.metric_max,
            self.spec.structure["x0"],
            bounded=inp.bounded,
        )

    @property
    def family_ids(self) -> list[str]:
        return self.inputs.family_ids

    @property
    def benchmark_ids(self) -> list[str]:
        return self.inputs.benchmark_ids

    def summary(self, var_names: list[str] | None = None) -> pd.DataFrame:
        """ArviZ summary of the main parameters."""
        import arviz as az

        names = var_names or [
            "loading",
            "intercept",
            "misfit",
            "floor",
            "efficiency_mean",
            "slope_mean",
            "residual_sd",
        ]
        return az.summary(
            self.idata, var_names=[n for n in names if n in self.idata["posterior"].dataset]
        )

    # ---------------------------------------------------------------- forecasts
    def forecast(
        self,
        targets: list[tuple[str, float]] | tuple[str, float],
        ci: float = 0.9,
        seed: int = 0,
    ) -> Forecast:
        """Forecast every benchmark for (family, training FLOPs) targets.

        Parameters
        ----------
        targets : (family, flops) or list of them
            ``flops`` in FLOPs (e.g. ``1e24``); a family the fit has not seen draws from the
            population of families.
        ci : float
            Central interval probability in (0, 1).
        seed : int
            Seed of the predictive noise draws (same seed, same numbers).
        """
        ci = check_ci(ci)
        if isinstance(targets, tuple):
            targets = [targets]
        if not targets:
            raise UsageError("forecast: give at least one (family, flops) target")
        rng = np.random.default_rng(seed)
        pa = self.posterior
        names, fams, flops_l, ths, ys = [], [], [], [], []
        for fam, flops in targets:
            fam = str(fam).strip()
            if not fam:
                raise UsageError(
                    "--family: the family name is empty; give a family like 'Llama-2' or a new name"
                )
            theta, _, y = forecast_compute_draws(pa, fam, flops, rng)
            names.append(f"{fam} @ {float(flops):.3g} FLOPs")
            fams.append(fam)
            flops_l.append(float(flops))
            ths.append(theta)
            ys.append(y)
        return self._package(names, fams, flops_l, np.stack(ths, 1), np.stack(ys, 1), ci)

    def _package(self, names, fams, flops_l, theta, y, ci, observed=None) -> Forecast:
        pa = self.posterior
        draws = xr.DataArray(
            y,
            dims=("sample", "model", "benchmark"),
            coords={"model": names, "benchmark": pa.benchmark_ids},
            name="score",
        )
        cap = xr.DataArray(
            theta,
            dims=("sample", "model", "factor"),
            coords={"model": names, "factor": pa.factor_ids},
            name="capability",
        )
        table = summarize_draws(draws, ci)
        info = pd.DataFrame({"model": names, "family": fams, "flops": flops_l})
        table = info.merge(table, on="model", how="right")
        table["known_family"] = table["family"].isin(pa.family_ids)
        if observed is not None:
            table = table.merge(observed, on=["model", "benchmark"], how="left")
        order = {n: i for i, n in enumerate(names)}
        border = {b: i for i, b in enumerate(pa.benchmark_ids)}
        table = table.sort_values(
            ["model", "benchmark"],
            key=lambda s: s.map(order) if s.name == "model" else s.map(border),
        ).reset_index(drop=True)
        return Forecast(table=table, draws=draws, capability=cap)

    def forecast_from_scores(
        self, new: BenchmarkData, ci: float = 0.9, seed: int = 0, n_particles: int = 256
    ) -> Forecast:
        """Fill in the blanks: forecast the scores a new model does not have from those it has.

        Each posterior draw updates the new model's capabilities with its observed scores
        (Laplace-proposal importance sampling, see :mod:`obscale_bayes.forecast.conditional`); the
        rest of the model is not refitted.
        """
        from obscale_bayes.forecast.conditional import conditional_forecast

        ci = check_ci(ci)
        return conditional_forecast(self, new, ci=ci, seed=seed, n_particles=n_particles)

    def is_current(self, data: BenchmarkData, spec: ModelSpec) -> bool:
        """Whether this fit was made from ``data`` and ``spec`` by this package version."""
        return (
            self.meta.get("data_fingerprint") == data.fingerprint()
            and self.meta.get("stored_spec", json.loads(self.spec.to_json()))
            == json.loads(spec.to_json())
            and self.meta.get("package_version") == __version__
        )
