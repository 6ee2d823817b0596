"""``obscale-bayes backtest``: the paper's analyses, a preset, or user-chosen tasks and splits.

Three modes, every method side by side in one table (or ``--json`` records):

* ``--preset paper`` (the default without ``--task``): the nine analyses of the brief's table;
* ``--preset bbh``: BBH overall, direct and chain-of-thought, FLOPs cutoff 84e21;
* ``--preset standard [--protocol compute_cutoff,family_k1,fill_half]``: the standard-benchmark
  backtests of :mod:`obscale_bayes.evaluation.standard` (one table per protocol);
* ``--task TASK [--task ...] [--inputs A,B] [--split SPEC] [--data FILE.csv]``: any task
  (see :mod:`obscale_bayes.evaluation.tasks` for task aliases and
  :mod:`obscale_bayes.evaluation.splits` for the split syntax).

Every mode builds its cases with :func:`obscale_bayes.evaluation.cases.build_case` and runs them
with :func:`obscale_bayes.evaluation.backtest.run_backtests`; this module only reads the flags
and formats the results (``main`` maps the library's parameter names in errors to flags).

Every finished fit is kept in ``--resume DIR`` (default ``runs/jobs``) as it finishes, so the
same command run again after a kill or Ctrl-C skips them and resumes (``--no-resume``: off);
``--preset standard`` does not use the store yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from obscale_bayes.cli.args import (
    add_resume_options,
    add_sampling_options,
    add_table_options,
    figure_path,
    store_path,
    table_kwargs,
)
from obscale_bayes.errors import UsageError
from obscale_bayes.fit.sampling import INFERENCES
from obscale_bayes.io import dumps_records
from obscale_bayes.progress import get_logger

log = get_logger(__name__)

COLUMNS = ["analysis", "method", "split", "n_train", "n_test", "mse", "mae", "crps", "coverage50",
           "coverage80", "coverage90", "coverage95", "width90", "max_rhat", "min_ess_bulk",
           "divergences"]  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``backtest`` subcommand on an argparse sub-parser collection."""
    b = sub.add_parser("backtest", help="fit on weaker models, score forecasts of stronger ones")
    b.add_argument(
        "--preset",
        choices=("paper", "bbh", "standard"),
        default=None,
        help="paper: the nine analyses of the paper (default without --task); "
        "bbh: BBH overall direct and CoT, FLOPs cutoff 84e21; standard: the 8 standard "
        "benchmarks of the shipped base table, protocols compute_cutoff, family_k1, fill_half",
    )
    b.add_argument(
        "--protocol",
        dest="protocols",
        metavar="P1,P2",
        help="standard preset: protocols, comma-separated, from compute_cutoff, family_k1, "
        "fill_half (all)",
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
    add_table_options(b, "the --data table")
    b.add_argument(
        "--families",
        choices=("all", "default"),
        default="all",
        help="model set for --task: all families, or the paper's 21 default ones (all)",
    )
    b.add_argument(
        "--methods",
        metavar="M1,M2",
        help="methods, comma-separated, from bayes, paper_pca3, flops_only, family_flops "
        "(all; bayes_joint, the joint model, only by name); the standard preset also has "
        "least_squares",
    )
    b.add_argument(
        "--spec",
        default=None,
        metavar="FILE_OR_NAME",
        help="model spec (default: noncentered, the default model non-centred for weak "
        "training sets; the standard preset: the package's default model)",
    )
    add_sampling_options(
        b, draws=1000, tune=1000, chains=4, seed_help="random seed (0)", backend=False
    )
    b.add_argument(
        "--inference",
        choices=INFERENCES,
        default="nuts",
        help="--preset standard: inference of the Bayesian fits (nuts; advi: the approximate "
        "mode, to compare with NUTS on the same cells)",
    )
    add_resume_options(b)
    b.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    b.add_argument("--plot", metavar="FILE.png", help="forecast-vs-actual and calibration figure")
    b.set_defaults(func=cmd_backtest)


@contextmanager
def resuming(store: str | None) -> Iterator[None]:
    """On Ctrl-C inside, say where the finished fits are kept (then let it go on)."""
    try:
        yield
    except KeyboardInterrupt:
        if store is not None:
            print(f"obscale-bayes: finished fits are kept in {store}; run the same command "
                  "again to resume", file=sys.stderr)  # fmt: skip
        raise


def _cases(args: argparse.Namespace) -> tuple[list, bool]:
    """Check the flags and build every case (no sampling); (cases, is the paper preset)."""
    from obscale_bayes.evaluation.cases import build_case, preset_cases
    from obscale_bayes.evaluation.presets import DEFAULT_FAMILIES, PRESETS
    from obscale_bayes.evaluation.splits import parse_split
    from obscale_bayes.evaluation.tasks import load_for, parse_inputs, resolve_task

    if args.task and args.preset:
        raise UsageError(f"--task: not used with --preset {args.preset}; drop one of them")
    if args.preset in PRESETS:
        for opt in ("task", "inputs", "split", "data", "analysis"):
            if getattr(args, opt):
                raise UsageError(f"--{opt}: not used with --preset {args.preset}; drop one")
        return preset_cases(args.preset), False
    if not args.task:
        for opt in ("inputs", "split", "data", "methods"):
            if getattr(args, opt):
                raise UsageError(f"--{opt}: only with --task or --preset bbh; drop it")
        return preset_cases("paper", args.analysis), True
    if args.analysis:
        raise UsageError("--analysis: only with --preset paper; drop it or --task")
    split = parse_split(args.split or "cutoff:84")
    if args.data is None and any(table_kwargs(args).values()):
        raise UsageError("benchmarks: --benchmarks/--columns/--ignore-columns/--normalised "
                         "read a --data table; give --data FILE")  # fmt: skip
    if args.data is None:
        for t in args.task:  # an unknown task is named before any table is read
            resolve_task(t)
        data = load_for(args.task, parse_inputs(args.inputs))
    else:
        data = load_for(args.task, (), path=args.data, **table_kwargs(args))
    fams = DEFAULT_FAMILIES if args.families == "default" else None
    return [build_case(data, t, args.inputs, split, families=fams) for t in args.task], False


def cmd_backtest(args: argparse.Namespace) -> int:
    from obscale_bayes.evaluation.backtest import (
        JOINT_METHOD,
        METHODS,
        RECORD_COLUMNS,
        parse_methods,
        run_backtests,
        targets_report,
    )
    from obscale_bayes.spec.spec import load_spec

    if args.plot:
        figure_path(args.plot)
    if args.preset == "standard":
        return _cmd_standard(args)
    if args.protocols:
        raise UsageError("--protocol: only with --preset standard; drop it")
    if args.inference != "nuts":
        raise UsageError("--inference: only with --preset standard; drop it")
    # bayes_joint (the joint model) by name only, never in the default set
    methods = parse_methods(args.methods, METHODS + JOINT_METHOD) if args.methods else METHODS
    cases, paper = _cases(args)  # every flag, task and split problem surfaces before sampling
    store = store_path(args)
    with resuming(store):
        summary, cells = run_backtests(
            cases, load_spec(args.spec or "noncentered"), methods, draws=args.draws,
            tune=args.tune, chains=args.chains, seed=args.seed, store=store,
        )  # fmt: skip
    rep = targets_report(summary, cells) if paper else None
    if args.json:
        print(dumps_records(summary[RECORD_COLUMNS], indent=1))
    else:
        print(format_table(summary, rep, cells))
    if args.plot:
        from obscale_bayes.plots.backtest import plot_backtest
        from obscale_bayes.plots.common import save_figure

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
        f"analyses (target: >= 6 of 9); geometric mean ratio {rep['geo_mean_ratio']:.2f} "
        "(target <= 0.85)",
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


STANDARD_COLUMNS = ["method", "mae_pp", "mse", "crps", "coverage50", "coverage90", "width90", "n",
                    "max_rhat", "min_ess_bulk", "divergences"]  # fmt: skip


def _cmd_standard(args: argparse.Namespace) -> int:
    """``--preset standard``: run the protocols, print one table per protocol (or records)."""
    from obscale_bayes.evaluation.standard import STANDARD_RECORD_COLUMNS, run_standard

    for opt in ("task", "inputs", "split", "data", "analysis"):
        if getattr(args, opt):
            raise UsageError(f"--{opt}: not used with --preset standard; drop it")
    store = store_path(args)
    with resuming(store):
        records, cells = run_standard(
            args.protocols, args.spec, args.methods, draws=args.draws, tune=args.tune,
            chains=args.chains, seed=args.seed, store=store, inference=args.inference,
        )  # fmt: skip
    if args.inference != "nuts":
        log.info("the Bayesian fits used %s (approximate inference)", args.inference.upper())
    if args.json:
        print(dumps_records(records[STANDARD_RECORD_COLUMNS], indent=1))
    else:
        print(format_standard(records))
    if args.plot:
        from obscale_bayes.plots.backtest import plot_backtest
        from obscale_bayes.plots.common import save_figure

        # one colour per protocol: the cases of a protocol (family_k1's folds) pooled
        save_figure(plot_backtest(cells.assign(analysis=cells["protocol"])), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def format_standard(records: pd.DataFrame) -> str:
    """One table per protocol (every method side by side, pooled over the protocol's cells), then
    its MAE in percentage points per benchmark and method."""
    out = []
    fmt = {"float_format": lambda v: f"{v:.3g}", "index": False}
    for protocol, g in records.groupby("protocol", sort=False):
        pooled = g[g["benchmark"] == "all"].assign(mae_pp=lambda d: 100 * d["mae"])
        head = pooled.iloc[0]
        out += [f"== {protocol}: train {head['n_train']} models, test {head['n_test']} models; "
                f"split {head['split']}", pooled[STANDARD_COLUMNS].to_string(**fmt), ""]  # fmt: skip
        per = g[g["benchmark"] != "all"].pivot(index="benchmark", columns="method", values="mae")
        per = (100 * per).reindex(dict.fromkeys(g.loc[g["benchmark"] != "all", "benchmark"]))
        out += ["MAE (pp) per benchmark:", per.to_string(float_format=lambda v: f"{v:.2f}"), ""]
        bayes = pooled[pooled["method"] == "bayes"]
        if len(bayes):
            best = pooled[pooled["method"] != "bayes"]["mae"].min()
            b = bayes.iloc[0]
            out.append(
                f"targets: Bayes MAE {100 * b['mae']:.2f} pp vs best baseline "
                f"{100 * best:.2f} pp (target <=); 90% coverage {b['coverage90']:.2f} "
                f"(target 0.85-0.95), 50% {b['coverage50']:.2f} (target 0.40-0.60); mean 90% "
                f"width {b['width90']:.3f}"
            )
            out.append("")
    return "\n".join(out).rstrip() + "\n"
