"""A compute slope of each benchmark's own?  Decided on training models only (question 9).

Run from the repository root::

    .venv/bin/python studies/benchmark_slopes.py [--seeds 0 1] [--draws 1000] [--tune 1000]
        [--chains 4] [--protocols compute_cutoff family_k1] [--out FILE]

Asked after the held-out standard preset of today's default had been seen: its compute_cutoff
MAE is 7.24-7.27 pp against 7.02 for the family intercept + log-FLOPs sigmoid, and the largest
loss is ARC-C (7.68 vs 4.03 pp).  The sigmoid fits each benchmark its own FLOPs slope; in the
default a benchmark's trend with compute is :math:`\\lambda_j \\cdot b`, the slopes of the K = 3
capabilities mixed by the benchmark's loadings, which are set mostly by how benchmarks co-vary
*across models at a given compute*.  The candidate ``benchmark_slopes`` (``models/
benchmark_slopes.toml``) adds :math:`c_j x_m` on the non-anchor benchmarks, partially pooled
towards 0 (:math:`c_j \\sim N(0, \\sigma^c)`, :math:`\\sigma^c \\sim \\mathrm{HalfNormal}(0.3)`).

Protocols, inside the standard preset's training set only (the shipped base table's 77 models
with known FLOPs <= 84e21, as in ``compute_extrapolation.py``): the inner ``compute_cutoff``
(cutoff 25e21) with its ``fill_half`` cells, and the inner ``family_k1`` (5 folds of families).
Both specs on the same cells, seeds 0 and 1, 4 chains x 1000 draws; the baselines beside them.

The rule, written before these fits ran: ``benchmark_slopes`` replaces the default only if

1. its inner ``compute_cutoff`` pooled MAE is lower than the default's on **both** seeds;
2. its mean (over the seeds) ``family_k1`` and ``fill_half`` MAE are each no more than 0.10 pp
   above the default's;
3. its mean CRPS over the three protocols and both seeds is lower than the default's;
4. its mean 90% coverage on ``compute_cutoff`` and on ``family_k1`` is each no further from
   0.90 than the default's plus 0.02 (about four cells, so that one cell does not decide);

and then it must pass the gate on the shipped table on 5 of 5 seeds
(``benchmarks/gate_seeds.py``), checked after this study.  The inner fits' gate is printed next
to every number.  Results go to ``studies/results/benchmark_slopes.json``.

**Question 11** (``--question offset_prior``), asked after question 9's verdict (and after the
held-out standard preset had been seen): in the default fit on the whole shipped table the
posterior of the family offsets' spread sits in the tail of its prior :math:`\\mathcal
N^+(0, 0.3)` on GSM8K (mean 0.79, 90% interval 0.61-0.99) and above its scale on XWinograd (0.49)
and TruthfulQA (0.43), where the family + FLOPs sigmoid's per-family intercepts are unpooled.  The
candidate ``offset_sd_1`` is the default with ``family_offset_sd`` ~ :math:`\\mathcal N^+(0, 1)`.
The rule, written before its fits ran, is question 9's (conditions 1-4 against the default, then
the 5-seed gate), on the same protocols, seeds and settings; the default's rows are question 9's
(same code, seeds and settings; ``--base-rows``), so only the candidate is fitted.  Results go to
``studies/results/offset_prior.json``.

**Question 12** (``--question floors``), asked after question 11's verdict (and after the held-out
standard preset had been seen): on the inner compute_cutoff protocol (seed 0) the default
over-predicts ARC-C (MAE 7.84 vs 4.70 pp for the family + FLOPs sigmoid, 20 of 25 cells above the
truth) and Winogrande (5.30 vs 3.50 pp), the two benchmarks whose weakest models score at or
under their metadata chance level; the sigmoid fits its floor in [0, chance + margin], ours fixes
it there.  The candidate ``fitted_floors`` (``models/fitted_floors.toml`` then; the default
since) is the default with every non-anchor benchmark's chance floor fitted (prior ``floor``,
Uniform(0, 0.5), as TruthfulQA's already is).  The rule, written before its fits ran, is
question 9's (conditions 1-4 against the default, then the 5-seed gate), on the same protocols,
seeds and settings, with the default's rows of question 9 (``--base-rows``).  Results go to ``studies/results/fitted_floors.json``
(the 5-seed gate: ``fitted_floors_gate.json``).  Verdict: accepted (docs/model.md "Fitted chance
floors"); the default's rows of questions 9-12 are the ``metadata_floors`` spec (:func:`spec_of`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "studies"))

from compute_extrapolation import (  # noqa: E402
    INNER_CUTOFF_1E21,
    METHODS,
    add_fit_args,
    bayes_row,
    print_protocols,
    seed_mean,
    write_verdict,
)
from release_trend import training_table  # noqa: E402

from obscale_bayes.evaluation.backtest import run_backtests  # noqa: E402
from obscale_bayes.evaluation.standard import pool_standard, standard_cases  # noqa: E402
from obscale_bayes.progress import enable  # noqa: E402
from obscale_bayes.spec.spec import load_spec  # noqa: E402

OUT = ROOT / "studies" / "results" / "benchmark_slopes.json"
SPECS = ("default", "benchmark_slopes")
#: result files whose name is not the question's
OUTS = {"slopes": OUT, "floors": OUT.with_name("fitted_floors.json")}
#: the candidate of each question (the base is always the default)
QUESTIONS = {"slopes": "benchmark_slopes", "offset_prior": "offset_sd_1", "floors": "fitted_floors"}


def spec_of(name: str):
    """A spec as these questions ran it: the default of the time had its chance floors from
    metadata (``fitted_floors = "blank"``, the ``metadata_floors`` variant since question 12
    made the fitted floors the default), and so did questions 9 and 11's candidates;
    ``fitted_floors`` is question 12's candidate, today's default."""
    if name == "fitted_floors":
        return load_spec("default").with_overrides(fitted_floors="non_anchor")
    if name == "offset_sd_1":
        wide = {"family_offset_sd": {"dist": "halfnormal", "sigma": 1.0}}
        return load_spec("default").with_overrides(priors=wide, fitted_floors="blank")
    return load_spec(name).with_overrides(fitted_floors="blank")


#: case groups: the compute_cutoff fit also scores its fill_half cells
GROUPS = {"compute_cutoff": ["compute_cutoff", "fill_half"], "family_k1": ["family_k1"]}


def study_rows(
    seeds: list[int], draws: int, tune: int, chains: int, groups: list[str], specs=SPECS
) -> tuple[list[dict], list[dict]]:
    """Pooled rows (every method; Bayesian rows per spec) and the Bayesian per-benchmark rows."""
    table = training_table()
    rows, per_bench = [], []
    for group in groups:
        cases = standard_cases(table, GROUPS[group], cutoff_1e21=INNER_CUTOFF_1E21)
        for seed in seeds:
            for name in specs:
                t0 = time.perf_counter()
                summary, cells = run_backtests(cases, spec_of(name), METHODS, draws=draws,
                                               tune=tune, chains=chains, seed=seed,
                                               store=None)  # fmt: skip
                rec = pool_standard(summary, cells)
                for r in rec.to_dict("records"):
                    if r["method"] != "bayes" and name != specs[0]:
                        continue  # the baselines do not depend on the spec
                    r |= {"spec": name if r["method"] == "bayes" else "-", "seed": seed,
                          "seconds": time.perf_counter() - t0}  # fmt: skip
                    (rows if r["benchmark"] == "all" else per_bench).append(r)
    return rows, [r for r in per_bench if r["method"] == "bayes"]


def decide(rows: list[dict], seeds: list[int], cand: str = SPECS[1]) -> tuple[str, str]:
    """The rule of the module docstring: (the spec it keeps, why)."""

    def get(spec: str, protocol: str, seed: int) -> dict:
        return bayes_row(rows, spec, protocol, seed)

    def mean(spec: str, protocol: str, key: str) -> float:
        return seed_mean(rows, spec, protocol, key, seeds)

    base = SPECS[0]
    protocols = ("compute_cutoff", "fill_half", "family_k1")
    lower = all(get(cand, "compute_cutoff", s)["mae"] < get(base, "compute_cutoff", s)["mae"]
                for s in seeds)  # fmt: skip
    near = {p: mean(cand, p, "mae") <= mean(base, p, "mae") + 0.001
            for p in ("family_k1", "fill_half")}  # fmt: skip
    crps = {sp: sum(mean(sp, p, "crps") for p in protocols) / 3 for sp in (base, cand)}
    gap = {(sp, p): abs(mean(sp, p, "coverage90") - 0.9)
           for sp in (base, cand) for p in ("compute_cutoff", "family_k1")}  # fmt: skip
    cov = all(gap[cand, p] <= gap[base, p] + 0.02 for p in ("compute_cutoff", "family_k1"))
    ok = lower and all(near.values()) and crps[cand] < crps[base] and cov
    text = (f"1. compute_cutoff MAE lower on every seed: {lower}; 2. family_k1 / fill_half MAE "
            f"within 0.10 pp: {near['family_k1']} / {near['fill_half']}; 3. mean CRPS "
            f"{crps[cand]:.5f} vs {crps[base]:.5f}; 4. 90% coverage within 0.02 of the "
            f"default's distance to 0.90: {cov} (compute_cutoff "
            f"{mean(cand, 'compute_cutoff', 'coverage90'):.3f} vs "
            f"{mean(base, 'compute_cutoff', 'coverage90'):.3f}, family_k1 "
            f"{mean(cand, 'family_k1', 'coverage90'):.3f} vs "
            f"{mean(base, 'family_k1', 'coverage90'):.3f})")  # fmt: skip
    return (cand if ok else base), text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fit_args(ap)
    ap.add_argument("--protocols", nargs="+", choices=list(GROUPS), default=list(GROUPS),
                    help="a subset (the rule needs both; the smoke test runs one)")  # fmt: skip
    ap.add_argument("--question", choices=list(QUESTIONS), default="slopes")
    ap.add_argument(
        "--base-rows",
        type=Path,
        help="a result file whose default rows to reuse (same code, seeds, settings)",
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    cand = QUESTIONS[a.question]
    a.out = a.out or OUTS.get(a.question, OUT.with_name(f"{a.question}.json"))
    enable()
    specs = (cand,) if a.base_rows else (SPECS[0], cand)
    rows, per_bench = study_rows(a.seeds, a.draws, a.tune, a.chains, a.protocols, specs)
    if a.base_rows:  # the default's rows (the baselines come with this run's)
        old = json.loads(a.base_rows.read_text())["rows"]
        keep = [r for r in old if r["spec"] == SPECS[0] and r["seed"] in a.seeds
                and r["protocol"] in {p for g in a.protocols for p in GROUPS[g]}]  # fmt: skip
        rows = [r for r in keep if r["benchmark"] == "all"] + rows
        per_bench = [r for r in keep if r["benchmark"] != "all"] + per_bench
    print_protocols(rows, dict.fromkeys(r["protocol"] for r in rows))
    verdict, reason = (None, "needs both protocols")
    if set(a.protocols) == set(GROUPS):
        verdict, reason = decide(rows, a.seeds, cand)
    write_verdict(a.out, vars(a), rows + per_bench, verdict, reason, f"spec = {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
