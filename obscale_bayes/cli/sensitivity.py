"""``obscale-bayes sensitivity PATH``: power-scaling prior sensitivity of a saved fit, a verdict,
and optionally a sweep that refits the fit's data under every spec variant in ``models/``.

The sweep keeps every finished fit in ``--resume DIR`` (default ``runs/jobs``), so the same
command run again after a kill or Ctrl-C skips them (``--no-resume``: off)."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from obscale_bayes.cli.args import (
    add_resume_options,
    add_sampling_options,
    parse_flops,
    sampling_kwargs,
    store_path,
)
from obscale_bayes.errors import UsageError
from obscale_bayes.io import dumps_records


def parse_target(text: str) -> tuple[str, float]:
    """``"FAMILY:FLOPS"`` -> ``(family, flops)``; the last ``:`` separates them."""
    fam, sep, fl = str(text).rpartition(":")
    fam = fam.strip()
    if not sep or not fam or not fl.strip():
        raise UsageError(
            f"--forecast: '{text}' is not FAMILY:FLOPS; give e.g. --forecast Llama-2:8.4e24"
        )
    try:
        return fam, parse_flops(fl.strip())
    except UsageError as e:
        why = str(e).removeprefix("flops: ")
        raise UsageError(f"--forecast {text}: {why}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sensitivity`` subcommand on an argparse sub-parser collection."""
    s = sub.add_parser(
        "sensitivity", help="which parameters and forecasts of a fit are driven by the priors"
    )
    s.add_argument("path", metavar="PATH", help="a fit file written by 'fit' or 'quickstart'")
    s.add_argument(
        "--forecast",
        action="append",
        metavar="FAMILY:FLOPS",
        help="forecast to assess, e.g. Llama-2:8.4e24 (repeatable; default: the quickstart ones)",
    )
    s.add_argument("--json", action="store_true", help="print JSON records instead of tables")
    s.add_argument(
        "--sweep", action="store_true", help="also refit under every models/ variant (slow)"
    )
    s.add_argument(
        "--variant", action="append", metavar="NAME", help="sweep only these variants (repeatable)"
    )
    add_sampling_options(
        s,
        draws=1000,
        tune=1000,
        chains=4,
        seed_help="seed of forecasts and sweep fits (0)",
        what="sweep: ",
    )
    add_resume_options(s, "sweep fit")
    s.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from obscale_bayes.checks.sensitivity import (
        PSENSE_THRESHOLD,
        SHIFT_THRESHOLD,
        power_scaling,
        run_sweep,
        verdict,
    )
    from obscale_bayes.cli.backtest import resuming
    from obscale_bayes.spec.spec import available_specs

    targets = [parse_target(t) for t in args.forecast] if args.forecast else None
    variants = args.variant
    if variants:
        known = available_specs()
        bad = [v for v in variants if v not in known]
        if bad:
            raise UsageError(
                f"--variant: unknown variant '{bad[0]}'; choose from {', '.join(known)}"
            )
        if not args.sweep:
            raise UsageError("--variant only applies with --sweep; add --sweep")

    from obscale_bayes.fit.fitted import CapabilityModel

    fit = CapabilityModel.load(args.path)
    ps = power_scaling(fit, targets, seed=args.seed)
    sweep = None
    if args.sweep:
        fit_kwargs = {k: v for k, v in sampling_kwargs(args).items() if k != "seed"}
        store = store_path(args)
        with resuming(store):
            sweep, _ = run_sweep(
                fit.data,
                variants,
                base=fit.spec,
                base_fit=fit,
                targets=targets,
                fit_kwargs=fit_kwargs,
                seed=args.seed,
                store=store,
            )
    v = verdict(ps, sweep)
    if args.json:
        out = {"power_scaling": ps, "verdict": v}
        if sweep is not None:
            out["sweep"] = sweep
        print(dumps_records(out, indent=1))
        return 0
    print(format_report(ps, v, sweep, PSENSE_THRESHOLD, SHIFT_THRESHOLD))
    return 0


def format_report(
    ps: pd.DataFrame,
    v: pd.DataFrame,
    sweep: pd.DataFrame | None,
    threshold: float,
    shift_threshold: float,
) -> str:
    """Readable power-scaling table, optional sweep table, and the verdict."""
    fmt = {"prior": "{:.3f}".format, "likelihood": "{:.3f}".format}
    lines = [
        f"Power-scaling sensitivity (Kallioinen et al. 2024; threshold {threshold}): "
        "top-level priors scaled together, likelihood scaled as a whole",
        "",
        "Parameters",
    ]
    par = ps[ps["kind"] == "parameter"][["label", "prior", "likelihood", "diagnosis"]]
    lines.append(par.to_string(index=False, formatters=fmt))
    fc = ps[ps["kind"] == "forecast"][["target", "benchmark", "prior", "likelihood", "diagnosis"]]
    if len(fc):
        lines += ["", "Forecasts (predictive score draws)"]
        lines.append(fc.to_string(index=False, formatters=fmt))
    if sweep is not None:
        lines += ["", "Variant sweep: median shift in units of the base 90% interval width"]
        wide = sweep[sweep["kind"] != "base"].pivot_table(
            index=["target", "benchmark"], columns="variant", values="shift", sort=False
        )
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            lines.append(wide.to_string(float_format=lambda x: f"{x:+.2f}"))
        conv = sweep.groupby("variant", sort=False)["converged"].first()
        bad = [n for n, ok in conv.items() if not ok]
        if bad:
            lines.append(f"variants that failed the convergence gate: {', '.join(bad)}")
    lines += ["", _verdict_text(v, threshold, shift_threshold)]
    return "\n".join(lines)


def _verdict_text(v: pd.DataFrame, threshold: float, shift_threshold: float) -> str:
    pd_ = v[v["verdict"] == "prior-driven"]
    rule = (
        f"rule: prior-driven if prior sensitivity >= {threshold} or a prior-only variant moves "
        f"the median by > {shift_threshold} base-interval widths"
    )
    head = []
    for kind in ("parameter", "forecast"):
        n = int((v["kind"] == kind).sum())
        k = int((pd_["kind"] == kind).sum())
        if n:
            head.append(f"{k} of {n} {kind}s prior-driven")
    lines = ["Verdict: " + "; ".join(head) + f" ({rule})"]
    for _, r in pd_.iterrows():
        lines.append(f"  prior-driven  {r['label']}: {r['reason']} ({r['diagnosis']})")
    if pd_.empty:
        lines.append("  every assessed conclusion is robust to the priors")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from obscale_bayes.cli.main import main

    sys.exit(main(["sensitivity", *sys.argv[1:]]))
