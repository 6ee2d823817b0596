"""obscale-bayes: Bayesian observational scaling laws for language-model benchmarks.

The main entry points, importable from the top level (loaded on first use, so that
``import obscale_bayes`` stays cheap)::

    from obscale_bayes import load_shipped, read_table, load_spec, CapabilityModel
    from obscale_bayes import forecast_compute, forecast_from_scores

See ``ARCHITECTURE.md`` for the layout of the subpackages.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "BenchmarkData": "obscale_bayes.data.tables",
    "load_shipped": "obscale_bayes.data.tables",
    "load_benchmark_metadata": "obscale_bayes.data.tables",
    "read_table": "obscale_bayes.data.reader",
    "ModelSpec": "obscale_bayes.spec.spec",
    "load_spec": "obscale_bayes.spec.spec",
    "available_specs": "obscale_bayes.spec.spec",
    "build_model": "obscale_bayes.model.build",
    "simulate": "obscale_bayes.model.simulate",
    "CapabilityModel": "obscale_bayes.fit.fitted",
    "run_fits": "obscale_bayes.fit.runner",
    "FitJob": "obscale_bayes.fit.runner",
    "Forecast": "obscale_bayes.forecast.result",
    "forecast_compute": "obscale_bayes.forecast.compute",
    "forecast_from_scores": "obscale_bayes.forecast.conditional",
    "ObscaleError": "obscale_bayes.errors",
    "DataError": "obscale_bayes.errors",
    "SpecError": "obscale_bayes.errors",
    "FitFileError": "obscale_bayes.errors",
    "UsageError": "obscale_bayes.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'obscale_bayes' has no attribute '{name}'")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
