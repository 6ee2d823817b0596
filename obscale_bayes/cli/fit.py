"""``obscale-bayes fit`` (sample a model, save it as one NetCDF file) and ``obscale-bayes check``
(print a saved fit's convergence report; exit 1 when the gate fails).

Also the lines every command that fits or loads a model prints about it (:func:`fit_line`,
:func:`describe_data`), which ``quickstart`` shares.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from obscale_bayes.cli.args import (
    add_sampling_options,
    add_table_options,
    check_writable,
    sampling_kwargs,
    table_kwargs,
)
from obscale_bayes.errors import UsageError
from obscale_bayes.progress import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import ModelSpec

log = get_logger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``fit`` and ``check`` on the command line's sub-parser collection."""
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
    add_table_options(f, "the --data tables")
    f.add_argument(
        "--anchors",
        metavar="A,B,C",
        help="anchor benchmarks, one per capability (default: the spec's; for a shipped spec "
        "whose anchors the table lacks, chosen by the rule of docs/data.md)",
    )
    add_sampling_options(f, draws=3000, tune=1500, chains=4, retry=True)
    f.add_argument("--quiet", action="store_true", help="no progress bar or stage messages")
    f.set_defaults(func=cmd_fit)

    c = sub.add_parser("check", help="print the convergence report; exit 1 if the gate fails")
    c.add_argument("path", metavar="PATH", help="a fit file written by 'fit'")
    c.set_defaults(func=cmd_check)


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def describe_data(data: BenchmarkData) -> str:
    """``"128 models x 8 benchmarks (985 scores) from the shipped tables"``."""
    src = "the shipped tables" if data.source.startswith("shipped") else data.source
    return (
        f"{len(data.models)} models x {len(data.benchmarks)} benchmarks "
        f"({len(data.scores)} scores) from {src}"
    )


def fit_line(fit: CapabilityModel, path: str | os.PathLike[str]) -> str:
    """One line saying what a fit file holds (spec, size, sampler, seed, package version)."""
    meta = fit.meta
    n_m = len(fit.inputs.model_ids)
    n_b = len(fit.inputs.benchmark_ids)
    how = meta.get("sampler", "?")
    if fit.inference != "nuts":
        how = f"{fit.inference.upper()} (approximate, {meta.get('iterations', '?')} steps)"
    return (
        f"fit {path}: spec '{fit.spec.name}', {n_m} models x {n_b} benchmarks, "
        f"{how} seed {meta.get('seed', '?')}, "
        f"{meta.get('chains', '?')} chains x {meta.get('draws', '?')} draws, "
        f"anchors {', '.join(fit.spec.anchors)}, "
        f"obscale-bayes {meta.get('package_version', '?')}"
    )


def table_anchors(spec: ModelSpec, data: BenchmarkData, anchors: str | None = None) -> ModelSpec:
    """:func:`obscale_bayes.spec.for_table.spec_for_table` with the ``--anchors`` flag's text
    (comma-separated ids) and its name in the messages."""
    from obscale_bayes.spec.for_table import spec_for_table

    given = None if anchors is None else [a.strip() for a in anchors.split(",")]
    return spec_for_table(spec, data, given, hint="--anchors")


def cmd_fit(args: argparse.Namespace) -> int:
    from obscale_bayes.data.reader import read_tables
    from obscale_bayes.data.tables import load_shipped
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import load_spec

    out = check_writable(args.out, "--out")
    spec = load_spec(args.spec)
    if not args.data and any(table_kwargs(args).values()):
        raise UsageError("benchmarks: --benchmarks/--columns/--ignore-columns/--normalised "
                         "read a --data table; give --data FILE")  # fmt: skip
    data = read_tables(args.data, **table_kwargs(args)) if args.data else load_shipped()
    spec = table_anchors(spec, data, args.anchors)
    for p in args.data or []:
        if Path(p).resolve() == out.resolve():
            raise UsageError(f"--out: {out} is also a --data file; write the fit elsewhere")
    log.info("data: %s; spec: '%s' (%s)", describe_data(data), spec.name, short_path(spec.source))
    from obscale_bayes.fit.jobstore import ctrl_c_stops

    with ctrl_c_stops():  # nutpie would hand back its partial draws on Ctrl-C, saved as a fit
        fit = CapabilityModel.fit(data, spec, progress=not args.quiet, **sampling_kwargs(args))
    log.info("sampling took %.1f s; saving the fit to %s", fit.diagnostics.sampling_seconds, out)
    fit.save(out)
    print(fit_line(fit, out))
    print(fit.diagnostics.report())
    if fit.diagnostics.approximate:
        log.info("an approximate fit (%s): fine for exploring a big table; refit with NUTS "
                 "for numbers to report", fit.inference.upper())  # fmt: skip
    if not fit.diagnostics.passed and not fit.diagnostics.approximate:
        per_family = len(data.models) / max(data.models["family"].nunique(), 1)
        hint = ""
        small = spec.structure["family_offsets"] or spec.structure["fitted_floors"] != "blank"
        if small and per_family < 3:
            # small families: the offsets and the fitted floors are what the OLL v2 fits missed
            # on (performance.md)
            hint = (f"; its families have {per_family:.1f} models on average: --spec no_offsets "
                    "(no family-by-benchmark offsets, floors from metadata) often passes there")  # fmt: skip
        log.info(
            "the convergence gate failed: do not trust these draws yet; run longer "
            "(--draws/--tune) or change the spec%s",
            hint,
        )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from obscale_bayes.fit.fitted import CapabilityModel

    fit = CapabilityModel.load(args.path)
    print(fit_line(fit, args.path))
    print(fit.diagnostics.report())
    return 0 if fit.diagnostics.passed else 1
