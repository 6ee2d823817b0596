"""The forecast targets of the quick start (and of the sensitivity report's default)."""

from __future__ import annotations

from obscale_bayes.data.tables import BenchmarkData

__all__ = ["QUICKSTART_FAMILIES", "QUICKSTART_NEW", "quickstart_targets"]

#: Known families forecast at 10x the compute of their largest model.
QUICKSTART_FAMILIES = ("Llama-2", "Pythia")
#: A family the fit has never seen, at a given training compute (FLOPs).
QUICKSTART_NEW = ("NewFamily", 1e24)


def quickstart_targets(data: BenchmarkData) -> list[tuple[str, float]]:
    """Llama-2 and Pythia at 10x the compute of their largest model, and a new family."""
    out = []
    m = data.models
    for fam in QUICKSTART_FAMILIES:
        f = m.loc[m["family"] == fam, "flops_1e21"].dropna()
        if len(f):
            out.append((fam, float(f.max()) * 1e21 * 10.0))
    out.append(QUICKSTART_NEW)
    return out
