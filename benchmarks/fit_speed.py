"""Fit speed: nutpie against PyMC's own NUTS on the default model and the full shipped table.

Run from the repository root::

    .venv/bin/python benchmarks/fit_speed.py [--draws N] [--tune N] [--chains N] [--seed S]
                                             [--samplers nutpie pymc] [--out FILE]

Each sampler runs in its own child process (multiprocessing, spawn), one after the other, on
``load_shipped()`` (128 base models x 8 standard benchmarks) with the default spec and the fit
defaults of :meth:`CapabilityModel.fit` (4 chains, 1500 tune + 3000 draws, target_accept 0.95,
``cores = min(chains, CPUs)``).  For each sampler it prints

- wall time of ``CapabilityModel.fit`` (graph building, compilation, tuning, sampling and the
  diagnostics), the compilation time and the sampling-only time (tune + draws);
- the convergence figures of the gate: minimum bulk ESS over the gate's variables, maximum
  R-hat, divergences;
- ESS per second (min bulk ESS / wall time; also per sampling-only second);
- peak memory: the high-water mark of the summed RSS of the child and all its descendants
  (psutil, polled every 0.1 s: PyMC samples in worker processes), and ``ru_maxrss`` of the child
  itself (``RUSAGE_SELF``) and of its largest waited-for descendant (``RUSAGE_CHILDREN``),

and the nutpie / PyMC ratios of wall time and ESS/s.  The figures are written to
``benchmarks/results/fit_speed.json``.  PyMC's NUTS takes several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "fit_speed.json"


def _child(sampler: str, draws: int, tune: int, chains: int, seed: int, queue) -> None:
    """Fit in this (child) process and put the figures on ``queue``."""
    import resource

    t_import = time.perf_counter()
    import nutpie
    import pymc as pm

    from obscale_bayes.data.tables import load_shipped
    from obscale_bayes.fit.fitted import CapabilityModel

    import_s = time.perf_counter() - t_import
    timings: dict[str, float] = {}

    # Time nutpie's compile and sample calls separately (fit looks them up at call time).
    orig_compile, orig_sample = nutpie.compile_pymc_model, nutpie.sample

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    nutpie.compile_pymc_model = timed("compile", orig_compile)
    nutpie.sample = timed("sampling", orig_sample)
    pm.sample = timed("pm_sample", pm.sample)

    data = load_shipped()
    t0 = time.perf_counter()
    fit = CapabilityModel.fit(
        data,
        None,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        sampler=sampler,
        progress=False,
    )
    wall = time.perf_counter() - t0
    d = fit.diagnostics
    if sampler == "pymc":
        # pm.sample stamps the time from the first to the last step (tune + draws) on the posterior
        sampling = float(fit.idata["posterior"].attrs.get("sampling_time", float("nan")))
        compile_ = timings["pm_sample"] - sampling  # compilation + initialisation + packaging
    else:
        sampling = timings["sampling"]
        compile_ = timings["compile"]
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    queue.put(
        {
            "sampler": sampler,
            "import_s": import_s,
            "wall_s": wall,
            "compile_s": compile_,
            "sampling_s": sampling,
            "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail,
            "max_rhat": d.max_rhat,
            "divergences": d.divergences,
            "min_bfmi": d.min_bfmi,
            "gate_passed": d.passed,
            "worst": d.worst[:3],
            "ess_per_s": d.min_ess_bulk / wall,
            "ess_per_sampling_s": d.min_ess_bulk / sampling,
            "maxrss_self_mb": self_kb / 1024.0,
            "maxrss_descendant_mb": child_kb / 1024.0,
        }
    )


def tree_rss(proc) -> int:
    """Summed RSS (bytes) of a psutil process and all its descendants (0 if it is gone)."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_one(sampler: str, draws: int, tune: int, chains: int, seed: int) -> dict:
    """Run one sampler in a spawned child; poll its process tree's RSS while it runs."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(sampler, draws, tune, chains, seed, queue))
    t0 = time.perf_counter()
    p.start()
    peak = 0
    try:
        import psutil

        proc = psutil.Process(p.pid)
    except ImportError:  # psutil is optional: fall back to ru_maxrss alone
        proc = None
    result = None
    while p.is_alive() or result is None:
        if proc is not None:
            peak = max(peak, tree_rss(proc))
        try:
            result = queue.get(timeout=0.1)
        except Exception:  # queue.Empty
            if not p.is_alive() and result is None:
                break
    p.join()
    if result is None:
        raise RuntimeError(f"{sampler}: the child process failed (exit code {p.exitcode})")
    result["process_s"] = time.perf_counter() - t0
    result["peak_rss_tree_mb"] = peak / 2**20 if proc is not None else float("nan")
    return result


def _fmt(r: dict) -> list[str]:
    return [
        f"{r['wall_s']:.1f}",
        f"{r['compile_s']:.1f}",
        f"{r['sampling_s']:.1f}",
        f"{r['min_ess_bulk']:.0f}",
        f"{r['max_rhat']:.4f}",
        f"{r['divergences']}",
        f"{r['ess_per_s']:.2f}",
        f"{r['ess_per_sampling_s']:.2f}",
        f"{r['peak_rss_tree_mb']:.0f}",
        f"{r['maxrss_self_mb']:.0f}/{r['maxrss_descendant_mb']:.0f}",
        "PASS" if r["gate_passed"] else "FAIL",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--tune", type=int, default=1500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samplers", nargs="+", default=["nutpie", "pymc"], choices=["nutpie", "pymc"])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    results = {}
    for s in a.samplers:
        print(
            f"fitting with {s}: {a.chains} chains x ({a.tune} tune + {a.draws} draws) ...",
            flush=True,
        )
        results[s] = run_one(s, a.draws, a.tune, a.chains, a.seed)
        print(f"  done in {results[s]['wall_s']:.1f} s", flush=True)

    cols = [
        "wall s",
        "compile s",
        "sampling s",
        "min bulk ESS",
        "max R-hat",
        "div",
        "ESS/s",
        "ESS/sampling-s",
        "peak RSS MB",
        "maxrss self/desc MB",
        "gate",
    ]
    rows = [[s, *_fmt(r)] for s, r in results.items()]
    widths = [max(len(x) for x in col) for col in zip(["sampler", *cols], *rows, strict=True)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    print()
    print(f"default model, shipped base table (128 models x 8 benchmarks), {os.cpu_count()} CPUs")
    print(line(["sampler", *cols]))
    for r in rows:
        print(line(r))
    ratios = {}
    if "nutpie" in results and "pymc" in results:
        n, p = results["nutpie"], results["pymc"]
        ratios = {
            "wall_time_nutpie_over_pymc": n["wall_s"] / p["wall_s"],
            "sampling_time_nutpie_over_pymc": n["sampling_s"] / p["sampling_s"],
            "ess_per_s_nutpie_over_pymc": n["ess_per_s"] / p["ess_per_s"],
            "peak_rss_nutpie_over_pymc": n["peak_rss_tree_mb"] / p["peak_rss_tree_mb"],
        }
        print()
        print(
            f"nutpie / PyMC: wall time {ratios['wall_time_nutpie_over_pymc']:.3f} "
            f"(PyMC takes {1 / ratios['wall_time_nutpie_over_pymc']:.1f}x as long), "
            f"sampling time {ratios['sampling_time_nutpie_over_pymc']:.3f}, "
            f"ESS/s {ratios['ess_per_s_nutpie_over_pymc']:.2f}x, "
            f"peak RSS {ratios['peak_rss_nutpie_over_pymc']:.2f}"
        )
    out = {
        "settings": {
            "data": "load_shipped() (128 base models x 8 standard benchmarks)",
            "spec": "default",
            "draws": a.draws,
            "tune": a.tune,
            "chains": a.chains,
            "seed": a.seed,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "results": results,
        "ratios": ratios,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
