"""Scaling: fit cost of the default model on synthetic tables from 128 x 8 to 5000 x 50.

Run from the repository root::

    .venv/bin/python benchmarks/scale.py [--models 128 500 1000 5000] [--benchmarks 8 20 50]
        [--methods nutpie pymc advi] [--missing 0.4] [--draws N] [--tune N] [--chains N]
        [--iterations N] [--max-seconds S] [--no-predict] [--fresh] [--out FILE] [--plot FILE]
        [--report-only]

Each table is :func:`obscale_bayes.model.layouts.synthetic_table` (families of the shipped
table's sizes, its FLOPs, its eight benchmarks first, then simulated ones; ``--missing`` of the
cells blank at random) simulated from the default model with seed ``--seed``.  Each (table,
method) is one fit of the default spec in its own child process (spawn), one after the other:

- ``nutpie`` and ``pymc``: NUTS, ``--chains x (--tune + --draws)`` (default 4 x (1000 + 1000),
  the backtests' setting), target acceptance 0.95, no retry;
- ``advi``: the approximate mode (``inference="advi"``: mean-field ADVI, ``--iterations`` steps,
  then ``--chains x --draws`` independent draws).

For each it records: wall time of ``CapabilityModel.fit`` (graph, compilation, tuning, sampling,
diagnostics), compilation time (nutpie: ``compile_pymc_model``), the gate's figures (min bulk ESS,
max R-hat, divergences; for ADVI the plateau test), min bulk ESS per second of wall time, peak
memory of the child's process tree (psutil, polled every 0.2 s), and, against the simulation's
truth, the RMSE of the posterior-mean capabilities and the coverage of their 50% / 90%
central intervals (a calibration figure that NUTS and ADVI share).

A fit still running after ``--max-seconds`` (default 900: the issue's 15 minutes) is stopped and
recorded as a timeout.  Unless ``--no-predict``, a NUTS fit is not started when a log-log line
through the same method's finished sizes predicts more than ``--max-seconds`` (recorded as
skipped, with the prediction).  Methods run one after the other, each over the sizes from the
smallest.  Results go to ``benchmarks/results/scale.json`` as each fit
ends; rows already there with the same settings are kept and not re-run (``--fresh`` re-runs
them), so the grid can be filled in several sittings.  ``--plot`` draws cost against scored cells
on log-log axes (``docs/scale.png`` in the docs).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_speed import tree_rss  # noqa: E402  (the process-tree memory poll fit_speed uses)

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale.json"
METHODS = ("advi", "nutpie", "pymc")


def _child(n_models, n_bench, method, a: dict, queue) -> None:
    """Simulate the table and fit it in this (child) process; put the figures on ``queue``."""
    import numpy as np
    import nutpie

    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.model.layouts import synthetic_table

    data, truth = synthetic_table(n_models, n_bench, missing=a["missing"], seed=a["seed"])
    timings: dict[str, float] = {}
    orig = nutpie.compile_pymc_model

    def compile_timed(*args, **kw):
        t = time.perf_counter()
        try:
            return orig(*args, **kw)
        finally:
            timings["compile"] = time.perf_counter() - t

    nutpie.compile_pymc_model = compile_timed
    kw = dict(draws=a["draws"], chains=a["chains"], seed=a["seed"], progress=False)
    if method == "advi":
        kw.update(inference="advi", iterations=a["iterations"])
    else:
        kw.update(sampler=method, tune=a["tune"])
    t0 = time.perf_counter()
    fit = CapabilityModel.fit(data, None, **kw)
    wall = time.perf_counter() - t0
    d = fit.diagnostics
    cap = fit.idata["posterior"].dataset["capability"].stack(s=("chain", "draw"))
    true = truth["capability"].transpose("model", "factor")
    cap = cap.sel(model=true["model"]).transpose("model", "factor", "s").to_numpy()
    t = true.to_numpy()
    cover = {}
    for level in (0.5, 0.9):
        lo, hi = np.quantile(cap, [(1 - level) / 2, (1 + level) / 2], axis=-1)
        cover[f"capability_cov{int(level * 100)}"] = float(np.mean((lo <= t) & (t <= hi)))
    queue.put(
        {
            "models": n_models,
            "benchmarks": n_bench,
            "method": method,
            "cells": int(len(data.scores)),
            "families": int(data.models["family"].nunique()),
            "status": "done",
            "wall_s": wall,
            "compile_s": timings.get("compile", float("nan")),
            "min_ess_bulk": d.min_ess_bulk,
            "max_rhat": d.max_rhat,
            "divergences": d.divergences,
            "gate_passed": bool(d.passed),
            "approximate": bool(d.approximate),
            "failures": d.failures(),
            "ess_per_s": d.min_ess_bulk / wall,
            "capability_rmse": float(np.sqrt(np.mean((cap.mean(-1) - t) ** 2))),
            **cover,
        }
    )


def _kill_tree(proc) -> None:
    import psutil

    try:
        procs = [*proc.children(recursive=True), proc]
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def run_one(n_models: int, n_bench: int, method: str, a: dict) -> dict:
    """One fit in a spawned child, stopped after ``a["max_seconds"]``; its record."""
    import psutil

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(n_models, n_bench, method, a, queue))
    t0 = time.perf_counter()
    p.start()
    proc = psutil.Process(p.pid)
    peak, result = 0, None
    while result is None:
        peak = max(peak, tree_rss(proc))
        try:
            result = queue.get(timeout=0.2)
        except Exception:  # queue.Empty
            if not p.is_alive():
                break
            if time.perf_counter() - t0 > a["max_seconds"]:
                _kill_tree(proc)
                break
    p.join()
    elapsed = time.perf_counter() - t0
    base = {"models": n_models, "benchmarks": n_bench, "method": method}
    if result is None:
        status = "timeout" if elapsed > a["max_seconds"] else f"failed (exit {p.exitcode})"
        result = {**base, "status": status, "wall_s": elapsed}
    result["process_s"] = elapsed
    result["peak_rss_mb"] = peak / 2**20
    return result


def predicted_seconds(rows: list[dict], method: str, cells: float) -> float | None:
    """A log-log line through the method's finished fits, at ``cells`` (None: < 2 points)."""
    import numpy as np

    pts = [
        (r["cells"], r["wall_s"]) for r in rows if r["method"] == method and r["status"] == "done"
    ]
    if len({c for c, _ in pts}) < 2:
        return None
    x, y = np.log([c for c, _ in pts]), np.log([w for _, w in pts])
    slope, icpt = np.polyfit(x, y, 1)
    return float(np.exp(icpt + slope * np.log(cells)))


def _fmt(r: dict) -> list[str]:
    def f(key, fmt):
        v = r.get(key)
        return "" if v is None or (isinstance(v, float) and v != v) else format(v, fmt)

    gate = ""
    if r["status"] == "done":
        gate = ("converged*" if r["approximate"] else "PASS") if r["gate_passed"] else "FAIL"
    return [
        f"{r['models']} x {r['benchmarks']}",
        r["method"],
        f("cells", "d"),
        r["status"] if r["status"] != "done" else "",
        f("wall_s", ".0f"),
        f("compile_s", ".1f"),
        f("min_ess_bulk", ".0f"),
        f("max_rhat", ".3f"),
        f("divergences", "d"),
        f("ess_per_s", ".2f"),
        f("peak_rss_mb", ".0f"),
        f("capability_rmse", ".3f"),
        f("capability_cov50", ".2f"),
        f("capability_cov90", ".2f"),
        gate,
    ]


COLS = ["table", "method", "cells", "status", "wall s", "compile s", "min ESS", "R-hat", "div",
        "ESS/s", "peak MB", "cap RMSE", "cov50", "cov90", "gate"]  # fmt: skip


def print_table(rows: list[dict]) -> None:
    body = [_fmt(r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(COLS, *body, strict=True)]
    for cells in [COLS, *body]:
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    print("* approximate: the plateau test of the optimisation, not the MCMC gate")


def plot(rows: list[dict], path: Path, max_seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = {"nutpie": "C0", "pymc": "C1", "advi": "C2"}
    for m in METHODS:
        done = sorted((r for r in rows if r["method"] == m and r["status"] == "done"),
                      key=lambda r: r["cells"])  # fmt: skip
        if done:
            ax.plot([r["cells"] for r in done], [r["wall_s"] for r in done], "-", color=colors[m],
                    alpha=0.5)  # fmt: skip
            for r in done:
                ax.plot(r["cells"], r["wall_s"], "o", color=colors[m],
                        mfc=colors[m] if r["gate_passed"] else "white")  # fmt: skip
            ax.plot([], [], "o-", color=colors[m], label=m)
        for r in rows:
            if r["method"] == m and r["status"] == "timeout" and "cells" in r:
                ax.plot(r["cells"], r["wall_s"], "^", color=colors[m], mfc="white", ms=9)
    ax.axhline(max_seconds, color="grey", ls=":", lw=1)
    ax.text(0.99, max_seconds * 1.08, f"{max_seconds / 60:.0f} min", ha="right", color="grey",
            fontsize=8, transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("scored cells (models x benchmarks x share scored)")
    ax.set_ylabel("wall time of the fit (s)")
    ax.set_title("Default model on synthetic tables, 2 CPUs\n"
                 "filled: gate passed (ADVI: plateau); hollow: failed; triangle: stopped",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, nargs="+", default=[128, 500, 1000, 5000])
    ap.add_argument("--benchmarks", type=int, nargs="+", default=[8, 20, 50])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--missing", type=float, default=0.4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=None, help="ADVI steps (package default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--no-predict", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="re-run rows already in --out")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--report-only", action="store_true", help="print and plot --out; fit nothing")
    a = ap.parse_args(argv)
    from obscale_bayes.fit.sampling import ADVI_ITERATIONS

    settings = {
        "missing": a.missing, "draws": a.draws, "tune": a.tune, "chains": a.chains,
        "iterations": a.iterations or ADVI_ITERATIONS, "seed": a.seed,
        "max_seconds": a.max_seconds,
    }  # fmt: skip
    old = json.loads(a.out.read_text()) if a.out.exists() else {}
    keep = old.get("settings", {}).get("fit") == settings and not a.fresh
    rows: list[dict] = list(old.get("rows", [])) if keep else []
    done = {(r["models"], r["benchmarks"], r["method"]) for r in rows}

    def save() -> None:
        out = {
            "settings": {
                "fit": settings,
                "spec": "default",
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "rows": sorted(
                rows,
                key=lambda r: (
                    r["models"] * r["benchmarks"],
                    r["models"],
                    METHODS.index(r["method"]),
                ),
            ),  # fmt: skip
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        tmp.replace(a.out)

    grid = sorted(((m, b) for m in a.models for b in a.benchmarks), key=lambda t: t[0] * t[1])
    for method in [] if a.report_only else a.methods:
        for n_m, n_b in grid:
            if (n_m, n_b, method) in done:
                print(f"{n_m} x {n_b} {method}: kept from {a.out.name}", flush=True)
                continue
            approx_cells = n_m * n_b * (1 - a.missing)
            pred = None if a.no_predict or method == "advi" else predicted_seconds(
                rows, method, approx_cells)  # fmt: skip
            if pred is not None and pred > a.max_seconds:
                print(f"{n_m} x {n_b} {method}: skipped, predicted {pred:.0f} s", flush=True)
                rows.append({"models": n_m, "benchmarks": n_b, "method": method,
                             "cells": int(approx_cells), "status": "skipped",
                             "predicted_s": pred})  # fmt: skip
                save()
                continue
            print(f"{n_m} x {n_b} {method} ...", flush=True)
            r = run_one(n_m, n_b, method, settings)
            r.setdefault("cells", int(approx_cells))
            rows.append(r)
            save()
            print(f"  {r['status']} in {r['wall_s']:.0f} s", flush=True)
    print()
    print(f"default model, synthetic tables ({a.missing:.0%} of cells missing), "
          f"{os.cpu_count()} CPUs; NUTS {a.chains} x ({a.tune} + {a.draws}), "
          f"ADVI {settings['iterations']} steps")  # fmt: skip
    print_table(json.loads(a.out.read_text())["rows"])
    if a.plot:
        plot(rows, a.plot, a.max_seconds)
        print(f"\nfigure {a.plot}")
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
