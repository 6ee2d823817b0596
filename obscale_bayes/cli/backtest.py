"""``obscale-bayes backtest``: the paper's analyses, a preset, or user-chosen tasks and splits.

Three modes, every method side by side in one table (or ``--json`` records):

* ``--preset paper`` (the default without ``--task``): the nine analyses of the brief's table;
* ``--preset bbh``: BBH overall, direct and chain-of-thought, FLOPs cutoff 84e21;
* ``--task TASK [--task ...] [--inputs A,B] [--split SPEC] [--data FILE.csv]``: any task
  (see :mod:`obscale_bayes.evaluation.generic` for task aliases and the split syntax).
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from obscale_bayes.errors import UsageError

COLUMNS = ["analysis", "method", "split", "n_train", "n_test", "mse", "mae", "crps", "coverage50",
           "coverage80", "coverage90", "coverage95", "width90", "max_rhat", "divergences"]  # fmt: skip


def add_parser(sub, positive_int, seed) -> None:
    """Register the ``backtest`` subcommand on an argparse sub-parser collection."""
    b = sub.add_parser("backtest", help="fit on weaker models, score forecasts of stronger ones")
    b.add_argument(
        "--preset",
        choices=("paper", "bbh"),
        default=None,
        help="paper: the nine analyses of the paper (default without --task); "
        "bbh: BBH overall direct and CoT, FLOPs cutoff 84e21",
    )
    b.add_argument(
        "--analysis", action="append", metavar="KEY", help="paper preset: only these analyses"
    )
    b.add_argument(
        "--task",
        action="append",
        metavar="TASK",
        help="target task: a benchmark id or an alias such as gsm8k_cot, bbh_overall_cot, "
        "bbh_navigate_direct (repeatable)",
    )
    b.add_argument(
        "--inputs",
        metavar="A,B,...",
        help="capability inputs, comma-separated benchmark ids (default: the 8 standard ones)",
    )
    b.add_argument(
        "--split",
        metavar="SPEC",
        help="cutoff:84[:unknown=drop] | top:0.1 | family:NAME[:k=1] | random:0.2[:seed=0] "
        "(default cutoff:84)",
    )
    b.add_argument(
        "--data", metavar="FILE.csv", help="table with inputs and tasks (default: shipped)"
    )
    b.add_argument(
        "--families",
        choices=("all", "default"),
        default="all",
        help="model set for --task: all families, or the paper's 21 default ones (all)",
    )
    b.add_argument(
        "--methods",
        metavar="M1,M2",
        help="methods, comma-separated, from bayes, paper_pca3, flops_only, family_flops (all)",
    )
    b.add_argument(
        "--spec",
        default="noncentered",
        metavar="FILE_OR_NAME",
        help="model spec (noncentered: the default model, non-centred for weak training sets)",
    )
    b.add_argument("--draws", type=positive_int, default=1000, help="draws per chain (1000)")
    b.add_argument("--tune", type=positive_int, default=1000, help="warm-up per chain (1000)")
    b.add_argument("--chains", type=positive_int, default=4, help="chains (4)")
    b.add_argument("--seed", type=seed, default=0, help="random seed (0)")
    b.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    b.add_argument("--plot", metavar="FILE.png", help="forecast-vs-actual and calibration figure")
    b.set_defaults(func=cmd_backtest)


def _check_plot(path: str | None) -> None:
    if path:
        from obscale_bayes.plots.scaling import FIGURE_FORMATS

        if path.rsplit(".", 1)[-1].lower() not in FIGURE_FORMATS:
            raise UsageError(f"--plot: {path}: use one of {', '.join(FIGURE_FORMATS)}")


def _generic_plan(args: argparse.Namespace) -> dict:
    """Validate the generic-mode arguments (no sampling) and return what to run."""
    from obscale_bayes.evaluation.generic import (
        PRESETS,
        load_for,
        parse_inputs,
        parse_methods,
        parse_split,
        resolve_task,
    )
    from obscale_bayes.evaluation.presets import DEFAULT_FAMILIES

    methods = parse_methods(args.methods)
    if args.preset in PRESETS:
        for opt in ("task", "inputs", "split", "data", "analysis"):
            if getattr(args, opt):
                raise UsageError(f"--{opt}: not used with --preset {args.preset}; drop one")
        p = PRESETS[args.preset]
        split = parse_split(p["split"])
        data = load_for(p["tasks"], p["inputs"])
        return {"tasks": p["tasks"], "inputs": p["inputs"], "split": split, "data": data,
                "families": p["families"], "methods": methods}  # fmt: skip
    if args.analysis:
        raise UsageError("--analysis: only with --preset paper; drop it or --task")
    split = parse_split(args.split or "cutoff:84")
    if args.data is None:
        for t in args.task:
            resolve_task(t)
        inputs = parse_inputs(args.inputs)
        data = load_for(args.task, inputs)
    else:
        from obscale_bayes.data.reader import read_table

        data = read_table(args.data)
        inputs = parse_inputs(args.inputs, data.benchmark_ids)
        for t in args.task:
            resolve_task(t, data.benchmark_ids)
    fams = DEFAULT_FAMILIES if args.families == "default" else None
    return {"tasks": list(args.task), "inputs": inputs, "split": split, "data": data,
            "families": fams, "methods": methods}  # fmt: skip


def cmd_backtest(args: argparse.Namespace) -> int:
    from obscale_bayes.evaluation.backtest import RECORD_COLUMNS
    from obscale_bayes.spec.spec import load_spec

    _check_plot(args.plot)
    if args.task and args.preset:
        raise UsageError(f"--task: not used with --preset {args.preset}; drop one of them")
    generic = bool(args.task) or args.preset not in (None, "paper")
    if generic:
        from obscale_bayes.evaluation.generic import generic_case, run_generic

        plan = _generic_plan(args)
        for t in plan["tasks"]:  # every split/task problem surfaces before any sampling
            generic_case(t, plan["inputs"], plan["split"], plan["data"], plan["families"])
        spec = load_spec(args.spec)
        summary, cells = run_generic(
            plan["tasks"], plan["inputs"], plan["split"], plan["data"],
            methods=plan["methods"], families=plan["families"], spec=spec, draws=args.draws,
            tune=args.tune, chains=args.chains, seed=args.seed,
        )  # fmt: skip
        rep = None
    else:
        from obscale_bayes.evaluation.backtest import run_paper_preset, targets_report
        from obscale_bayes.evaluation.presets import ANALYSES

        for opt in ("inputs", "split", "data", "methods"):
            if getattr(args, opt):
                raise UsageError(f"--{opt}: only with --task or --preset bbh; drop it")
        keys = args.analysis or [a.key for a in ANALYSES]
        known = [a.key for a in ANALYSES]
        bad = [k for k in keys if k not in known]
        if bad:
            raise UsageError(
                f"--analysis: unknown analysis {bad[0]!r}; choose from {', '.join(known)}"
            )
        spec = load_spec(args.spec)
        summary, cells = run_paper_preset(
            spec, keys, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed
        )
        rep = targets_report(summary, cells)
    if args.json:
        out = summary[RECORD_COLUMNS].astype(object).where(summary[RECORD_COLUMNS].notna(), None)
        print(json.dumps(out.to_dict(orient="records"), indent=1))
    else:
        print(format_table(summary, rep, cells))
    if args.plot:
        from obscale_bayes.plots.backtest import plot_backtest
        from obscale_bayes.plots.scaling import save_figure

        save_figure(plot_backtest(cells), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def format_table(summary: pd.DataFrame, rep: dict | None, cells: pd.DataFrame | None = None) -> str:
    """Readable side-by-side table plus the issue's targets (paper preset) or, for generic
    runs (``rep=None``), the Bayesian model's pooled coverage and its MSE ratio to the paper
    method per task."""
    t = summary[[c for c in COLUMNS if c in summary]].copy()
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        body = t.to_string(index=False, float_format=lambda v: f"{v:.3g}")
    if rep is None:
        return "\n".join([body, ""] + _generic_lines(summary, cells))
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


def _generic_lines(summary: pd.DataFrame, cells: pd.DataFrame | None) -> list[str]:
    lines = []
    piv = summary.pivot(index="analysis", columns="method", values="mse")
    if {"bayes", "paper_pca3"} <= set(piv.columns):
        r = piv["bayes"] / piv["paper_pca3"]
        lines.append(
            "MSE ratio ours/paper PC-3: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items())
        )
    if cells is not None and (cells["method"] == "bayes").any():
        b = cells[cells["method"] == "bayes"]
        lines.append(
            f"Bayesian pooled coverage over {len(b)} held-out cells: 50% interval "
            f"{b['covered50'].mean():.2f}, 90% interval {b['covered90'].mean():.2f}"
        )
    return lines
