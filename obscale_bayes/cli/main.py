"""The ``obscale-bayes`` command line: ``fit``, ``check``, ``forecast`` and ``quickstart``.

Every error a user can cause (bad data, spec, fit file or argument) is printed as one line
``obscale-bayes: error: <message>`` on stderr with exit status 2, never with a traceback;
``check`` exits with 1 when the convergence gate fails.  Output files (``--out``, ``--plot``)
are written atomically and only after everything before them has succeeded.

Heavy modules (PyMC, matplotlib) are imported only by the commands that need them, so argument
errors are reported at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pandas as pd

from obscale_bayes import __version__
from obscale_bayes.errors import DataError, ObscaleError, UsageError, one_line
from obscale_bayes.forecast.compute import forecast_compute
from obscale_bayes.forecast.conditional import forecast_from_scores
from obscale_bayes.forecast.targets import quickstart_targets
from obscale_bayes.validation import check_ci, check_flops

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.forecast.result import Forecast

PROG = "obscale-bayes"
DEFAULT_OUT = "runs/default.nc"
DEFAULT_PLOT = "runs/default_forecast.png"
#: Smallest accepted --flops: anything below is surely a unit mistake (1e21 units, params).
MIN_FLOPS = 1e15


class _ArgError(Exception):
    """An argparse error, re-raised so that :func:`main` prints it on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        cmd = self.prog.removeprefix(PROG).strip()
        hint = f"see '{PROG} {cmd + ' ' if cmd else ''}--help'"
        raise _ArgError(f"{message}; {hint}")


def _short(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _describe(data: BenchmarkData) -> str:
    src = "the shipped tables" if data.source.startswith("shipped") else data.source
    return (
        f"{len(data.models)} models x {len(data.benchmarks)} benchmarks "
        f"({len(data.scores)} scores) from {src}"
    )


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {v}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**32 - 1, got {v}")
    return v


def parse_ci(text: str | float) -> float:
    """Validate ``--ci`` (strictly between 0 and 1)."""
    return check_ci(text)


def parse_flops(text: str | float) -> float:
    """Validate one ``--flops`` value: absolute training FLOPs, e.g. ``1e24``."""
    f = check_flops(text)
    if f < MIN_FLOPS:
        raise UsageError(
            f"--flops: {text} FLOPs is far too small for a language model; give absolute "
            "training FLOPs (e.g. 8.4e22), not units of 1e21"
        )
    return f


def ci_label(ci: float) -> str:
    """``0.9 -> '90% interval'``."""
    return f"{round(ci * 100, 2):g}% interval"


# ---------------------------------------------------------------------------- files
def check_writable(path: str | os.PathLike[str], option: str) -> Path:
    """Fail early (before any work) when ``path`` cannot be written as an output file."""
    p = Path(path)
    if str(path).strip() == "":
        raise UsageError(f"{option}: empty file name; give a path")
    if p.is_dir():
        raise UsageError(f"{option}: {p} is a directory; give a file name inside it")
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{option}: cannot create {p}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write {p}: no write permission in {parent}")
    return p


def read_data(paths: Sequence[str] | None) -> BenchmarkData:
    """The training table: the shipped base table, or several validated CSVs concatenated.

    A model may appear in one file only; a benchmark appearing in several files must have the
    same metadata in each.
    """
    from obscale_bayes.data.reader import read_table
    from obscale_bayes.data.tables import BenchmarkData, load_shipped

    if not paths:
        return load_shipped()
    seen_path: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen_path:
            raise UsageError(f"--data: {p} is given twice; give each file once")
        seen_path[key] = p
    tables = [read_table(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    owner: dict[str, str] = {}
    bench: dict[str, tuple[dict, str]] = {}
    for p, t in zip(paths, tables, strict=True):
        for m in t.model_ids:
            if m in owner:
                raise DataError(
                    f"model '{m}' appears in both {owner[m]} and {p}; keep each model in one file"
                )
            owner[m] = p
        for row in t.benchmarks.to_dict("records"):
            b = row["benchmark"]
            if b in bench:
                first, fp = bench[b]
                diff = [
                    k
                    for k in ("floor", "n_items", "metric_min", "metric_max")
                    if not (
                        (pd.isna(first[k]) and pd.isna(row[k]))
                        or (
                            not pd.isna(first[k])
                            and not pd.isna(row[k])
                            and math.isclose(first[k], row[k])
                        )
                    )
                ]
                if diff:
                    raise DataError(
                        f"benchmark '{b}' has {diff[0]} {first[diff[0]]} in {fp} but {row[diff[0]]} "
                        f"in {p}; make the benchmark metadata agree"
                    )
            else:
                bench[b] = (row, p)
    return BenchmarkData(
        pd.concat([t.models for t in tables], ignore_index=True),
        pd.concat([t.scores for t in tables], ignore_index=True),
        pd.DataFrame([r for r, _ in bench.values()]),
        source=" + ".join(paths),
    )


# ---------------------------------------------------------------------------- output
def _decimals(lo: float, hi: float) -> int:
    span = hi - lo
    return 3 if span <= 1.0 else 2 if span <= 10.0 else 1


def _render(rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            c.rjust(w) if rt else c.ljust(w) for c, w, rt in zip(r, widths, right, strict=True)
        ]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def _family_context(fit: CapabilityModel, family: str, flops: float) -> tuple[str, str | None]:
    """Header text for a compute target and the family's largest observed model (if any)."""
    m = fit.data.models
    if family not in set(fit.family_ids):
        n = len(fit.family_ids)
        return f"family not in the fit: forecast from the population of {n} families", None
    fm = m[m["family"] == family]
    known = fm.dropna(subset=["flops_1e21"])
    if known.empty:
        return f"known family ({len(fm)} model{'s' if len(fm) != 1 else ''}, FLOPs unknown)", None
    big = known.loc[known["flops_1e21"].idxmax()]
    lo, hi = known["flops_1e21"].min() * 1e21, big["flops_1e21"] * 1e21
    if flops > hi * (1 + 1e-9):
        where = (
            f"{flops / hi:.3g}x the compute of its largest model, {big['model']} ({hi:.3g} FLOPs)"
        )
    elif flops < lo * (1 - 1e-9):
        where = f"below its smallest model ({lo:.3g} FLOPs)"
    else:
        where = f"inside its observed compute range ({lo:.3g} to {hi:.3g} FLOPs)"
    return f"known family, {len(fm)} model{'s' if len(fm) != 1 else ''}; {where}", str(big["model"])


def format_forecast(fit: CapabilityModel, fc: Forecast, ci: float) -> str:
    """The readable forecast table: one block per target, one row per benchmark."""
    meta = fit.data.benchmarks.set_index("benchmark")
    wide = fit.data.wide()
    t = fc.table
    blocks = []
    for name in dict.fromkeys(t["model"]):
        rows_t = t[t["model"] == name]
        first = rows_t.iloc[0]
        fam = first.get("family")
        flops = first.get("flops")
        observed_col = "observed" in rows_t.columns
        largest = None
        if observed_col:
            fam_txt = f", family {fam}" if isinstance(fam, str) and fam else ", family unknown"
            fl_txt = f", {float(flops):.3g} FLOPs" if pd.notna(flops) else ", FLOPs unknown"
            n_obs = int(rows_t["observed"].notna().sum())
            title = (
                f"{name}{fam_txt}{fl_txt}: conditioned on its {n_obs} observed "
                f"score{'s' if n_obs != 1 else ''}"
            )
        else:
            ctx, largest = _family_context(fit, str(fam), float(flops))
            title = f"{fam} at {float(flops):.3g} FLOPs: {ctx}"
        head = ["benchmark"]
        if observed_col:
            head.append("observed")
        head += ["mean", "median", ci_label(ci)]
        if largest is not None:
            head.append("largest model, observed")
        rows = [head]
        for _, r in rows_t.iterrows():
            b = r["benchmark"]
            mb = meta.loc[b] if b in meta.index else None
            d = 3 if mb is None else _decimals(float(mb["metric_min"]), float(mb["metric_max"]))
            disp = b if mb is None else str(mb["display_name"])
            row = [disp]
            if observed_col:
                row.append("" if pd.isna(r["observed"]) else f"{r['observed']:.{d}f}")
            row += [
                f"{r['mean']:.{d}f}",
                f"{r['median']:.{d}f}",
                f"[{r['lower']:.{d}f}, {r['upper']:.{d}f}]",
            ]
            if largest is not None:
                v = wide.loc[largest, b] if b in wide.columns else float("nan")
                row.append("" if pd.isna(v) else f"{v:.{d}f}")
            rows.append(row)
        right = [False] + [True] * (len(head) - 1)
        blocks.append("\n".join([title, *_render(rows, right)]))
    return "\n\n".join(blocks)


def _fit_line(fit: CapabilityModel, path: str | os.PathLike[str]) -> str:
    meta = fit.meta
    n_m = len(fit.inputs.model_ids)
    n_b = len(fit.inputs.benchmark_ids)
    return (
        f"fit {path}: spec '{fit.spec.name}', {n_m} models x {n_b} benchmarks, "
        f"{meta.get('sampler', '?')} seed {meta.get('seed', '?')}, "
        f"{meta.get('chains', '?')} chains x {meta.get('draws', '?')} draws, "
        f"obscale-bayes {meta.get('package_version', '?')}"
    )


# ---------------------------------------------------------------------------- commands
def cmd_fit(args: argparse.Namespace) -> int:
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import load_spec

    quiet = args.quiet
    out = check_writable(args.out, "--out")
    spec = load_spec(args.spec)
    data = read_data(args.data)
    for p in args.data or []:
        if Path(p).resolve() == out.resolve():
            raise UsageError(f"--out: {out} is also a --data file; write the fit elsewhere")
    _say(f"data: {_describe(data)}; spec: '{spec.name}' ({_short(spec.source)})", quiet)
    fit = CapabilityModel.fit(
        data,
        spec,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        sampler=args.sampler,
        progress=not quiet,
    )
    _say(f"sampling took {fit.diagnostics.sampling_seconds:.1f} s; saving the fit to {out}", quiet)
    _save_fit(fit, out)
    print(_fit_line(fit, out))
    print(fit.diagnostics.report())
    if not fit.diagnostics.passed:
        _say(
            "the convergence gate failed: do not trust these draws yet; run longer "
            "(--draws/--tune) or change the spec",
            quiet,
        )
    return 0


def _save_fit(fit: CapabilityModel, out: Path) -> None:
    try:
        fit.save(out)
    except OSError as e:
        raise UsageError(f"--out: cannot write {out} ({e.strerror or e}); check the path") from None


def cmd_check(args: argparse.Namespace) -> int:
    from obscale_bayes.fit.fitted import CapabilityModel

    fit = CapabilityModel.load(args.path)
    print(_fit_line(fit, args.path))
    print(fit.diagnostics.report())
    return 0 if fit.diagnostics.passed else 1


def cmd_forecast(args: argparse.Namespace) -> int:
    ci = parse_ci(args.ci)
    fams = args.family or []
    flops_raw = args.flops or []
    if len(fams) != len(flops_raw):
        raise UsageError(
            f"--family and --flops come in pairs: got {len(fams)} --family and "
            f"{len(flops_raw)} --flops; give '--family NAME --flops 1e24' for each target"
        )
    targets = []
    for fam, fl in zip(fams, flops_raw, strict=True):
        fam = fam.strip()
        if not fam:
            raise UsageError("--family: empty family name; give one like 'Llama-2' or a new name")
        targets.append((fam, parse_flops(fl)))
    if not targets and not args.models:
        raise UsageError(
            "nothing to forecast: give '--family NAME --flops 1e24' and/or '--models new.csv'"
        )
    plot = check_writable(args.plot, "--plot") if args.plot else None
    if plot is not None:
        from obscale_bayes.plots.scaling import FIGURE_FORMATS

        if plot.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
            raise UsageError(
                f"--plot: unsupported figure type '{plot.suffix or '(none)'}' for {plot}; "
                f"use one of {', '.join('.' + f for f in FIGURE_FORMATS)}"
            )
    new = None
    if args.models:
        from obscale_bayes.data.reader import read_table

        new = read_table(args.models, require_family=False)
    plot_fams = list(dict.fromkeys(f for f, _ in targets))
    if new is not None:
        plot_fams += [f for f in new.models["family"].dropna().unique() if f not in plot_fams]
    if plot is not None and not plot_fams:
        raise UsageError(
            "--plot: no family to draw; give '--family NAME --flops ...' or a family column in --models"
        )

    from obscale_bayes.fit.fitted import CapabilityModel

    fit = CapabilityModel.load(args.path)
    parts = []
    if targets:
        parts.append(forecast_compute(fit, targets, ci=ci, seed=args.seed))
    if new is not None:
        parts.append(forecast_from_scores(fit, new, ci=ci, seed=args.seed))
    fig = None
    if plot is not None:
        from obscale_bayes.plots.scaling import plot_scaling

        fig = plot_scaling(fit, plot_fams, ci=ci, seed=args.seed, targets=targets or None)
    if args.json:
        text = json.dumps([r for fc in parts for r in fc.records()], indent=2, allow_nan=False)
    else:
        text = "\n\n".join(format_forecast(fit, fc, ci) for fc in parts)
    if fig is not None:
        from obscale_bayes.plots.scaling import save_figure

        save_figure(fig, plot)
    print(text)
    if fig is not None:
        _say(f"wrote the figure {plot}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from obscale_bayes.data.tables import load_shipped
    from obscale_bayes.errors import FitFileError
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import load_spec

    out = check_writable(args.out, "--out")
    plot = check_writable(args.plot, "--plot")
    data = load_shipped()
    spec = load_spec("default")
    _say(f"data: {_describe(data)}; spec: '{spec.name}' ({_short(spec.source)})")
    fit = None
    if out.exists():
        try:
            old = CapabilityModel.load(out)
        except FitFileError as e:
            _say(f"cannot reuse {out} ({one_line(e)}); fitting again")
        else:
            if old.is_current(data, spec) and old.meta.get("seed") == args.seed:
                _say(f"reusing {out}: data, spec, seed and package version are unchanged")
                fit = old
            else:
                _say(
                    f"{out} is out of date (data, spec, seed or package version changed); refitting"
                )
    if fit is None:
        _say(f"fitting the default model; the fit will be saved to {out} (about 1-2 minutes)")
        fit = CapabilityModel.fit(data, spec, seed=args.seed, progress=True)
        _save_fit(fit, out)
        _say(f"saved the fit to {out}")
    print(_fit_line(fit, out))
    print(fit.diagnostics.report())
    if not fit.diagnostics.passed:
        _say("the convergence gate failed: treat these forecasts with caution")
    targets = quickstart_targets(fit.data)
    fc = forecast_compute(fit, targets, ci=0.9, seed=args.seed)
    print()
    print("Forecasts (posterior predictive: what an evaluation of such a model would report)")
    print()
    print(format_forecast(fit, fc, 0.9))
    from obscale_bayes.plots.scaling import plot_scaling

    fams = list(dict.fromkeys(f for f, _ in targets))
    plot_scaling(fit, fams, ci=0.9, seed=args.seed, targets=targets, path=plot)
    print()
    print(f"figure: {plot}")
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=(
            "Bayesian observational scaling laws: fit a hierarchical capability model to "
            "public benchmark scores and forecast stronger models with uncertainty bands."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    f = sub.add_parser("fit", help="fit a model and save it as one NetCDF file")
    f.add_argument(
        "--spec",
        default="default",
        metavar="FILE_OR_NAME",
        help="spec file or variant in models/ (default: default)",
    )
    f.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help="benchmark table (wide or long CSV), repeatable; default: the shipped base table",
    )
    f.add_argument("--out", required=True, metavar="PATH", help="where to write the fit (.nc)")
    f.add_argument(
        "--draws", type=_positive_int, default=3000, help="posterior draws per chain (3000)"
    )
    f.add_argument(
        "--tune", type=_positive_int, default=1500, help="warm-up steps per chain (1500)"
    )
    f.add_argument("--chains", type=_positive_int, default=4, help="number of chains (4)")
    f.add_argument("--seed", type=_seed, default=0, help="random seed (0): same seed, same draws")
    f.add_argument(
        "--sampler",
        choices=("nutpie", "pymc"),
        default="nutpie",
        help="NUTS implementation (nutpie)",
    )
    f.add_argument("--quiet", action="store_true", help="no progress bar or stage messages")
    f.set_defaults(func=cmd_fit)

    c = sub.add_parser("check", help="print the convergence report; exit 1 if the gate fails")
    c.add_argument("path", metavar="PATH", help="a fit file written by 'fit'")
    c.set_defaults(func=cmd_check)

    fc = sub.add_parser("forecast", help="forecast scores from compute or from observed scores")
    fc.add_argument("path", metavar="PATH", help="a fit file written by 'fit'")
    fc.add_argument(
        "--family",
        action="append",
        metavar="NAME",
        help="model family (repeatable, paired with --flops)",
    )
    fc.add_argument(
        "--flops", action="append", metavar="FLOPS", help="training FLOPs, e.g. 1e24 (repeatable)"
    )
    fc.add_argument(
        "--models", metavar="CSV", help="new models with some scores blank: fill them in"
    )
    fc.add_argument("--ci", default="0.9", metavar="P", help="central interval probability (0.9)")
    fc.add_argument("--seed", type=_seed, default=0, help="seed of the predictive draws (0)")
    fc.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    fc.add_argument("--plot", metavar="FILE.png", help="also draw scaling curves with bands")
    fc.set_defaults(func=cmd_forecast)

    q = sub.add_parser("quickstart", help="fit (or reuse) the default model, forecast and plot")
    q.add_argument("--out", default=DEFAULT_OUT, metavar="PATH", help=f"fit file ({DEFAULT_OUT})")
    q.add_argument(
        "--plot", default=DEFAULT_PLOT, metavar="FILE.png", help=f"figure ({DEFAULT_PLOT})"
    )
    q.add_argument("--seed", type=_seed, default=0, help="random seed (0)")
    q.set_defaults(func=cmd_quickstart)

    from obscale_bayes.cli.backtest import add_parser as add_backtest

    add_backtest(sub, _positive_int, _seed)

    from obscale_bayes.cli.sensitivity import add_parser as add_sensitivity

    add_sensitivity(sub, _positive_int, _seed)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed check, 2 error)."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as e:  # --help / --version
            return int(e.code or 0)
        return int(args.func(args))
    except (ObscaleError, _ArgError) as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `obscale-bayes forecast ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
