"""Faithfulness check: the paper's point-estimate method against its reference test MSEs.

Run from the repository root::

    .venv/bin/python studies/paper_baselines.py [--impute-with-test]

For each of the nine analyses of the brief's reference table it prints the train/test sizes,
the test MSE of :class:`~obscale_bayes.baselines.PaperPCAMethod`, :class:`FlopsOnly` and
:class:`FamilyInterceptFlops` (on test models with FLOPs; ``skip`` = test models without FLOPs),
the paper's reference numbers and the ratios ours / reference.  ``--impute-with-test`` lets the
PCA imputer also see the test models' inputs (the paper's code fits it on the training models).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from obscale_bayes.evaluation.baselines import FamilyInterceptFlops, FlopsOnly, PaperPCAMethod  # noqa: E402
from obscale_bayes.evaluation.cases import paper_case  # noqa: E402
from obscale_bayes.evaluation.presets import ANALYSES, read_raw_tables  # noqa: E402


def _mse(pred: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(pred)
    return float(np.mean((pred[ok] - y[ok]) ** 2)) if ok.any() else float("nan")


def run(raw_dir: str | None = None, impute_with_test: bool = False) -> pd.DataFrame:
    """Fit the three baselines on every analysis; return one row per analysis."""
    raw = read_raw_tables(raw_dir)
    rows = []
    for a in ANALYSES:
        case = paper_case(a, raw)
        train, test = case.train_frame, case.test_frame
        y = test.target.to_numpy()
        extra = test.inputs if impute_with_test else None
        pc3 = PaperPCAMethod(3, link=a.link).fit(train, extra_inputs=extra).predict(test)
        row = {"analysis": a.key, "n_train": len(train), "n_test": len(test), "pc3": _mse(pc3, y)}
        if a.model_set != "instruct":
            fl = FlopsOnly(link=a.link)
            row["flops"] = _mse(fl.fit(train).predict(test), y)
            fam = FamilyInterceptFlops(link=a.link)
            row["fam_flops"] = _mse(fam.fit(train).predict(test), y)
            row["skip"] = fl.n_skipped_
        row["ref_pc3"] = a.ref_pc3
        row["ref_flops"] = a.ref_flops
        rows.append(row)
    out = pd.DataFrame(rows).set_index("analysis")
    out["pc3/ref"] = out["pc3"] / out["ref_pc3"]
    out["flops/ref"] = out["flops"] / out["ref_flops"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", default=None, help="folder with the upstream CSVs")
    parser.add_argument("--impute-with-test", action="store_true", help="impute on train+test")
    args = parser.parse_args(argv)
    table = run(args.raw_dir, args.impute_with_test)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-"))


if __name__ == "__main__":
    main()
