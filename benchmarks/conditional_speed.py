"""Fill-in-the-blanks speed: ``forecast_from_scores`` for 1, 20 and 100 new models, old vs new.

Run from the repository root::

    .venv/bin/python benchmarks/conditional_speed.py [--fit FILE] [--draws N] [--tune N]
        [--chains N] [--models 1 20 100] [--old-models 1 20] [--old-rev REV] [--no-old-noise]
        [--seed S] [--out FILE]

The fit is the default spec on ``load_shipped()`` (128 base models x 8 benchmarks) with
:meth:`CapabilityModel.fit`'s defaults (4 x 3000 draws), read from ``--fit`` when that file
exists (and written there otherwise).  The new models are shipped models under new names with a
random half of their scores given (cycled past 128).  In this process, after the fit is loaded
and one warm-up call, it prints

- the wall time of ``forecast_from_scores`` for each count in ``--models`` (the batched Laplace
  + importance resampling of :mod:`obscale_bayes.forecast.laplace_is`) and, for the counts in
  ``--old-models``, of the implementation it replaced, read from git (``--old-rev``, the last
  commit before it; skipped where git or that revision is missing);
- the agreement of the two on the largest count both ran: the largest and the mean absolute
  difference, in percentage points, of the 5%, 50% and 95% quantiles of every blank cell,
  beside the same figures for the old method against itself with the next seed (its Monte
  Carlo noise; ``--no-old-noise`` skips that second old run) and for the new one;

and, each in a fresh process (median of 3), the start-up costs: ``import obscale_bayes``,
``obscale-bayes --help``, the imports of the forecast path (``CapabilityModel`` and
``forecast_from_scores``) and the whole ``obscale-bayes forecast FIT --models new.csv --json``
for each count.  The figures are written to ``benchmarks/results/conditional_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "conditional_speed.json"
OLD_REV = "8d09b0d"  # the last commit with the one-model-at-a-time implementation
OLD_PATH = "obscale_bayes/forecast/conditional.py"


def new_models(n: int, seed: int = 0):
    """``n`` shipped models under new names, each with a random half of its scores."""
    import numpy as np
    import pandas as pd

    from obscale_bayes.data.tables import BenchmarkData, load_shipped

    data = load_shipped()
    rng = np.random.default_rng(seed)
    names = data.models["model"].tolist()
    order = [names[i] for i in rng.permutation(len(names))]
    rows, scores = [], []
    for i in range(n):
        src = order[i % len(order)]
        row = data.models[data.models["model"] == src].assign(model=f"new/{i}")
        sc = data.scores[data.scores["model"] == src]
        keep = np.sort(rng.choice(len(sc), size=len(sc) // 2, replace=False))
        rows.append(row)
        scores.append(sc.iloc[keep].assign(model=f"new/{i}"))
    return BenchmarkData(
        pd.concat(rows, ignore_index=True),
        pd.concat(scores, ignore_index=True),
        data.benchmarks,
        source="new.csv",
    )


def load_old(rev: str) -> tuple[types.ModuleType | None, str]:
    """The replaced implementation as a module, from git (``None`` and why where it is not)."""
    try:
        src = subprocess.run(
            ["git", "show", f"{rev}:{OLD_PATH}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"git show {rev}:{OLD_PATH} failed ({type(e).__name__})"
    mod = types.ModuleType("old_conditional")
    try:
        exec(compile(src, f"{rev}:{OLD_PATH}", "exec"), mod.__dict__)
    except Exception as e:  # the package it imports has moved on
        return None, f"the old implementation no longer imports: {type(e).__name__}: {e}"
    return mod, f"git {rev}:{OLD_PATH}"


def quantiles(fc):
    """5/50/95% quantiles (3, M, J) of a forecast's draws and the mask of its blank cells."""
    import numpy as np

    q = fc.draws.quantile([0.05, 0.5, 0.95], dim="sample").values
    obs = fc.table.pivot(index="model", columns="benchmark", values="observed")
    obs = obs.reindex(
        index=list(fc.draws["model"].values), columns=list(fc.draws["benchmark"].values)
    )
    return np.asarray(q), obs.isna().to_numpy()


def agreement(a, b) -> dict:
    """Largest and mean |difference| in pp of the 5/50/95% quantiles over blank cells."""
    import numpy as np

    (qa, blank), (qb, _) = a, b
    d = np.abs(qa - qb) * 100.0
    out = {}
    for i, name in enumerate(["q05", "q50", "q95"]):
        out[f"max_{name}_pp"] = round(float(d[i][blank].max()), 3)
        out[f"mean_{name}_pp"] = round(float(d[i][blank].mean()), 3)
    out["blank_cells"] = int(blank.sum())
    return out


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def wall(cmd: list[str], repeats: int = 3) -> float:
    """Median wall time of a command in a fresh process (it must succeed)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 3)


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("obscale-bayes")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "obscale_bayes.cli"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--fit", help="fit file: read when it exists, else the fit is written there")
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--tune", type=int, default=1500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--models", type=int, nargs="+", default=[1, 20, 100])
    ap.add_argument("--old-models", type=int, nargs="*", default=[1, 20])
    ap.add_argument("--old-rev", default=OLD_REV)
    ap.add_argument("--no-old-noise", action="store_true", help="skip the second old run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)

    from obscale_bayes.data.tables import load_shipped
    from obscale_bayes.data.writers import write_wide_csv
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.forecast.conditional import forecast_from_scores
    from obscale_bayes.spec.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="conditional_speed_"))
    fit_path = Path(args.fit) if args.fit else tmp / "fit.nc"
    if not fit_path.exists():
        print(f"fitting the default spec ({args.chains} x {args.draws} draws) -> {fit_path}")
        fit = CapabilityModel.fit(
            load_shipped(), load_spec("default"), draws=args.draws, tune=args.tune,
            chains=args.chains, seed=args.seed, progress=False,
        )  # fmt: skip
        fit.save(fit_path)
    fit, load_s = timed(CapabilityModel.load, fit_path)
    n_draws = fit.posterior.n_samples
    print(f"fit {fit_path}: {n_draws} posterior draws, loaded in {load_s:.2f} s")

    _, warm_s = timed(forecast_from_scores, fit, new_models(1, args.seed), seed=args.seed)
    res: dict = {"new": {}, "old": {}}
    fcs: dict = {}
    for n in args.models:
        fc, s = timed(forecast_from_scores, fit, new_models(n, args.seed), seed=args.seed)
        ess = fc.table.attrs["importance_ess_fraction"].values()
        res["new"][str(n)] = {"seconds": round(s, 3), "min_ess_fraction": round(min(ess), 3)}
        fcs[("new", n)] = fc
        print(f"new  {n:4d} models: {s:7.2f} s  (min median ESS fraction {min(ess):.2f})")
    old, old_src = load_old(args.old_rev) if args.old_models else (None, "not asked for")
    for n in args.old_models if old is not None else []:
        fc, s = timed(old.forecast_from_scores, fit, new_models(n, args.seed), seed=args.seed)
        res["old"][str(n)] = {"seconds": round(s, 3)}
        fcs[("old", n)] = fc
        print(f"old  {n:4d} models: {s:7.2f} s")
    if old is None:
        print(f"old: skipped ({old_src})")
    for n in res["old"]:
        if n in res["new"]:
            res["old"][n]["speed-up"] = round(
                res["old"][n]["seconds"] / res["new"][n]["seconds"], 1
            )

    both = sorted(set(map(int, res["old"])) & set(args.models))
    agree = {}
    if both:
        n = both[-1]
        new_q, old_q = quantiles(fcs[("new", n)]), quantiles(fcs[("old", n)])
        other = forecast_from_scores(fit, new_models(n, args.seed), seed=args.seed + 1)
        agree = {"models": n, "new_vs_old": agreement(new_q, old_q),
                 "new_vs_new_next_seed": agreement(new_q, quantiles(other))}  # fmt: skip
        if not args.no_old_noise:
            fc2 = old.forecast_from_scores(fit, new_models(n, args.seed), seed=args.seed + 1)
            agree["old_vs_old_next_seed"] = agreement(old_q, quantiles(fc2))
        for k, v in agree.items():
            if isinstance(v, dict):
                print(f"agreement on {n} models, {k}: {v}")

    startup = {
        "import obscale_bayes": wall([sys.executable, "-c", "import obscale_bayes"]),
        "obscale-bayes --help": wall([*cli(), "--help"]),
        "import CapabilityModel": wall(
            [sys.executable, "-c", "from obscale_bayes.fit.fitted import CapabilityModel"]
        ),
        "import forecast_from_scores": wall(
            [sys.executable, "-c", "from obscale_bayes.forecast.conditional import forecast_from_scores"]
        ),
    }  # fmt: skip
    for n in args.models:  # the whole command: start-up, load, forecast, output
        write_wide_csv(new_models(n, args.seed), tmp / f"new{n}.csv")
        cmd = [*cli(), "forecast", str(fit_path), "--models", str(tmp / f"new{n}.csv"), "--json",
               "--seed", str(args.seed)]  # fmt: skip
        startup[f"obscale-bayes forecast --models ({n} models)"] = wall(cmd, repeats=1)
    for k, v in startup.items():
        print(f"start-up, fresh process: {k}: {v:.2f} s")

    out = {
        "what": "forecast_from_scores wall time in process after load (seconds), old vs new; "
        "agreement of 5/50/95% quantiles of blank cells (pp); start-up costs (fresh process)",
        "fit": {
            "path": str(fit_path),
            "posterior_draws": n_draws,
            "load_seconds": round(load_s, 3),
        },
        "warm_up_seconds": round(warm_s, 3),
        "times": res,
        "old_implementation": old_src,
        "agreement": agree,
        "startup_seconds": startup,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
