"""A fourth capability?  Decided on training models only (the sixth question of the compute study).

Run from the repository root::

    .venv/bin/python studies/fourth_capability.py --stage 1   # inner compute_cutoff + fill_half
    .venv/bin/python studies/fourth_capability.py --stage 2   # inner family_k1, stage-1 passers

Asked after the fifth question of ``studies/compute_extrapolation.py`` and after the held-out
standard preset of its default (family offsets) had been seen: compute_cutoff MAE 7.20 pp
against 7.02 for the family intercept + log-FLOPs sigmoid, ARC-C the largest per-benchmark loss
(7.64 vs 4.03).  ARC-C is also the largest per-benchmark MAE of that study's *inner*
compute_cutoff protocol (7.84 pp, training models only).  With K = 3 capabilities each benchmark's
compute slope is its loadings times the three capability slopes, so it is tied to the directions
the benchmarks share across models; a fourth capability gives its anchor a slope and family
efficiencies of its own, as the family + FLOPs sigmoid has for every benchmark.

Candidates: ``default`` (K = 3); ``k4`` (the shipped variant, fourth anchor GSM8K, defined long
before this question); ``k4_arc_c`` (fourth anchor ARC-C).  Both candidates non-centre all four
capability residuals, as the default does its three.  The same inner protocols as the earlier
questions (the 77 training models with known FLOPs <= 84e21; inner cutoff 25e21; family_k1 in 5
folds of families), seeds 0 and 1, 4 x (1000 + 1000).

The rule, written before any of these fits ran:

- **Stage 1** (inner compute_cutoff and fill_half): a candidate goes on only if its compute_cutoff
  MAE is lower than the default's on both seeds, its mean compute_cutoff 90% coverage is no
  further from 0.90 than the default's plus 0.02, and its mean fill_half MAE is no more than
  0.10 pp above the default's.
- **Stage 2** (inner family_k1; the default and the stage-1 passers only): a candidate stays only
  if its family_k1 MAE is no more than 0.05 pp above the default's on each seed and its mean 90%
  coverage is no further from 0.90 than the default's plus 0.02.
- Among those left, the lowest mean stage-1 compute_cutoff MAE; it then has to pass the gate on
  the shipped table on 5 of 5 seeds (``benchmarks/gate_seeds.py``) to become the default.

Results go to ``studies/results/fourth_capability_stage{1,2}.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "studies"))

from compute_extrapolation import INNER_CUTOFF_1E21, METHODS, _row  # noqa: E402
from release_trend import training_table  # noqa: E402

from obscale_bayes.evaluation.backtest import run_backtests  # noqa: E402
from obscale_bayes.evaluation.standard import pool_standard, standard_cases  # noqa: E402
from obscale_bayes.io import write_json  # noqa: E402
from obscale_bayes.progress import enable  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

RESULTS = ROOT / "studies" / "results"
STAGES = {1: ["compute_cutoff", "fill_half"], 2: ["family_k1"]}


def candidates() -> dict:
    """The default and the two four-capability candidates, by name (the default first)."""
    base = load_spec("default")
    k4 = load_spec("k4")
    four = list(k4.structure["anchors"])
    arc = [*base.structure["anchors"], "arc_c"]
    return {
        "default": base,
        "k4": k4.with_overrides(noncentered_factors=four),
        "k4_arc_c": k4.with_overrides(anchors=arc, noncentered_factors=arc),
    }


def _get(rows: list[dict], spec: str, protocol: str, seed: int) -> dict:
    return next(r for r in rows if r["spec"] == spec and r["protocol"] == protocol
                and r["seed"] == seed and r["method"] == "bayes")  # fmt: skip


def _mean(rows: list[dict], spec: str, protocol: str, key: str, seeds: list[int]) -> float:
    return sum(_get(rows, spec, protocol, s)[key] for s in seeds) / len(seeds)


def decide_stage1(rows: list[dict], seeds: list[int]) -> tuple[list[str], str]:
    """Stage 1 of the rule (module docstring): the candidates that go on, and why."""
    specs = sorted({r["spec"] for r in rows if r["method"] == "bayes"} - {"default"})
    passed, notes = [], []
    for s in specs:
        lower = all(_get(rows, s, "compute_cutoff", k)["mae"]
                    < _get(rows, "default", "compute_cutoff", k)["mae"] for k in seeds)  # fmt: skip
        cov = (
            abs(_mean(rows, s, "compute_cutoff", "coverage90", seeds) - 0.9)
            <= abs(_mean(rows, "default", "compute_cutoff", "coverage90", seeds) - 0.9) + 0.02
        )
        fill = (_mean(rows, s, "fill_half", "mae", seeds)
                <= _mean(rows, "default", "fill_half", "mae", seeds) + 0.001)  # fmt: skip
        notes.append(
            f"{s}: compute MAE lower on every seed {lower}, coverage {cov}, fill-in {fill}"
        )
        if lower and cov and fill:
            passed.append(s)
    return passed, "; ".join(notes)


def decide_stage2(rows: list[dict], seeds: list[int], stage1: list[dict]) -> tuple[str, str]:
    """Stage 2 and the final choice of the rule (module docstring)."""
    specs = sorted({r["spec"] for r in rows if r["method"] == "bayes"} - {"default"})
    ok, notes = [], []
    for s in specs:
        mae = all(_get(rows, s, "family_k1", k)["mae"]
                  <= _get(rows, "default", "family_k1", k)["mae"] + 0.0005 for k in seeds)  # fmt: skip
        cov = (
            abs(_mean(rows, s, "family_k1", "coverage90", seeds) - 0.9)
            <= abs(_mean(rows, "default", "family_k1", "coverage90", seeds) - 0.9) + 0.02
        )
        notes.append(f"{s}: family_k1 MAE within 0.05 pp on every seed {mae}, coverage {cov}")
        if mae and cov:
            ok.append(s)
    if not ok:
        return "default", "; ".join(notes) or "no stage-1 passer"
    best = min(ok, key=lambda s: _mean(stage1, s, "compute_cutoff", "mae", seeds))
    return best, "; ".join(notes) + f"; lowest stage-1 compute MAE: {best}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", type=int, choices=(1, 2), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", default=str(ROOT / "runs" / "jobs"))
    g.add_argument("--no-resume", action="store_true")
    ap.add_argument("--specs", nargs="+", help="candidates to run beside the default (all)")
    ap.add_argument("--out", type=Path, help="result file (studies/results/...stageN.json)")
    ap.add_argument("--stage1", type=Path, default=RESULTS / "fourth_capability_stage1.json",
                    help="stage 2: the stage-1 result it reads")  # fmt: skip
    a = ap.parse_args(argv)
    out = a.out or RESULTS / f"fourth_capability_stage{a.stage}.json"
    specs = candidates()
    names = ["default", *(a.specs or [n for n in specs if n != "default"])]
    if unknown := set(names) - set(specs):
        ap.error(f"unknown candidates {sorted(unknown)}; choose from {list(specs)}")
    stage1 = None
    if a.stage == 2:
        stage1 = json.loads(a.stage1.read_text())
        names = ["default", *stage1["passed"]]
        if len(names) == 1:
            print("no candidate passed stage 1: the default stays")
            return 0
    enable()
    table = training_table()
    protocols = STAGES[a.stage]
    cases = standard_cases(table, protocols, cutoff_1e21=INNER_CUTOFF_1E21)
    store = None if a.no_resume else a.resume
    rows = []
    for seed in a.seeds:
        for name in names:
            summary, cells = run_backtests(cases, specs[name], METHODS, draws=a.draws, tune=a.tune,
                                           chains=a.chains, seed=seed, store=store)  # fmt: skip
            rec = pool_standard(summary, cells)
            for r in rec[rec["benchmark"] == "all"].to_dict("records"):
                if r["method"] != "bayes" and name != names[0]:
                    continue  # the baselines do not depend on the spec
                rows.append(r | {"spec": name if r["method"] == "bayes" else "-", "seed": seed})
            if stage1 is None:  # per-benchmark MAE of the Bayesian fits, for the docs
                for r in rec[(rec["benchmark"] != "all") & (rec["method"] == "bayes")
                             & (rec["protocol"] == "compute_cutoff")].to_dict("records"):  # fmt: skip
                    rows.append(r | {"spec": name, "seed": seed, "per_benchmark": True})
    pooled = [r for r in rows if not r.get("per_benchmark")]
    heads = ["MAE pp", "MSE 1e-3", "cov50", "cov90", "width90", "cells"]
    for protocol in protocols:
        print(f"\n{protocol} (inner, training models only)")
        print(f"{'method':>14} {'spec':>10} {'seed':>4} " + " ".join(f"{h:>8}" for h in heads))
        for r in (r for r in pooled if r["protocol"] == protocol):
            gate = "" if r["method"] != "bayes" else (f"  R-hat {r['max_rhat']:.3f}, ESS "
                f"{r['min_ess_bulk']:.0f}, {r['divergences']:.0f} div")  # fmt: skip
            print(f"{r['method']:>14} {r['spec']:>10} {r['seed']:>4} {_row(r)}{gate}")
    if a.stage == 1:
        passed, reason = decide_stage1(pooled, a.seeds)
        print(f"\nstage 1 (module docstring) -> on to stage 2: {passed or 'none'}; {reason}")
        result = {"passed": passed}
    else:
        verdict, reason = decide_stage2(pooled, a.seeds, stage1["rows"])
        print(f"\nstage 2 (module docstring) -> {verdict}: {reason}")
        result = {"verdict": verdict}
    settings = vars(a) | {"out": str(out), "stage1": str(a.stage1)}
    write_json(out, {"settings": settings, "rows": rows, "reason": reason} | result)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
