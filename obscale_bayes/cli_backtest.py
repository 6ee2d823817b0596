"""``obscale-bayes backtest``: the paper's analyses (or one of them), every method, one table."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from .errors import UsageError

COLUMNS = ["analysis", "method", "n_train", "n_test", "mse", "mae", "crps", "coverage50",
           "coverage80", "coverage90", "coverage95", "width90"]  # fmt: skip


def add_parser(sub, positive_int, seed) -> None:
    """Register the ``backtest`` subcommand on an argparse sub-parser collection."""
    b = sub.add_parser("backtest", help="fit on weaker models, score forecasts of stronger ones")
    b.add_argument(
        "--preset", choices=("paper",), default="paper", help="the nine analyses of the paper"
    )
    b.add_argument(
        "--analysis", action="append", metavar="KEY", help="run only these analyses (repeatable)"
    )
    b.add_argument("--spec", default="default", metavar="FILE_OR_NAME", help="model spec")
    b.add_argument("--draws", type=positive_int, default=1000, help="draws per chain (1000)")
    b.add_argument("--tune", type=positive_int, default=1000, help="warm-up per chain (1000)")
    b.add_argument("--chains", type=positive_int, default=4, help="chains (4)")
    b.add_argument("--seed", type=seed, default=0, help="random seed (0)")
    b.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    b.add_argument("--plot", metavar="FILE.png", help="forecast-vs-actual and calibration figure")
    b.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    from .backtest import RECORD_COLUMNS, run_paper_preset, targets_report
    from .paper_presets import ANALYSES
    from .spec import load_spec

    keys = args.analysis or [a.key for a in ANALYSES]
    known = [a.key for a in ANALYSES]
    bad = [k for k in keys if k not in known]
    if bad:
        raise UsageError(f"--analysis: unknown analysis {bad[0]!r}; choose from {', '.join(known)}")
    if args.plot:
        from .plots import FIGURE_FORMATS

        if args.plot.rsplit(".", 1)[-1].lower() not in FIGURE_FORMATS:
            raise UsageError(f"--plot: {args.plot}: use one of {', '.join(FIGURE_FORMATS)}")
    spec = load_spec(args.spec)
    summary, cells = run_paper_preset(
        spec, keys, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed
    )
    rep = targets_report(summary, cells)
    if args.json:
        out = summary[RECORD_COLUMNS].astype(object).where(summary[RECORD_COLUMNS].notna(), None)
        print(json.dumps(out.to_dict(orient="records"), indent=1))
    else:
        print(format_table(summary, rep))
    if args.plot:
        from .backtest_plots import plot_backtest
        from .plots import save_figure

        save_figure(plot_backtest(cells), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def format_table(summary: pd.DataFrame, rep: dict) -> str:
    """Readable side-by-side table plus the issue's targets."""
    t = summary[[c for c in COLUMNS if c in summary]].copy()
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        body = t.to_string(index=False, float_format=lambda v: f"{v:.3g}")
    ratios = ", ".join(f"{k} {v:.2f}" for k, v in rep["ratios"].items())
    lines = [
        body,
        "",
        f"Bayesian posterior-mean MSE <= paper PC-3 MSE on {rep['wins']} of {rep['n']} "
        f"analyses (target: >= 7 of 9); geometric mean ratio {rep['geo_mean_ratio']:.2f} "
        "(target <= 1.0)",
        f"ratios ours/paper: {ratios}",
        f"pooled coverage over {rep['n_cells']} held-out cells: 50% interval "
        f"{rep['pooled_coverage50']:.2f} (target 0.40-0.60), 90% interval "
        f"{rep['pooled_coverage90']:.2f} (target 0.85-0.95)",
    ]
    return "\n".join(lines)


def calibration_curve(cells: pd.DataFrame, levels=(50, 80, 90, 95)) -> pd.DataFrame:
    """Empirical coverage per nominal level, pooled over the Bayesian method's cells."""
    b = cells[cells["method"] == "bayes"]
    return pd.DataFrame(
        {
            "nominal": np.array(levels) / 100,
            "empirical": [b[f"covered{lv}"].mean() for lv in levels],
        }
    )
