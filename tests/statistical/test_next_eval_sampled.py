"""What to evaluate next on a sampled fit: the greedy pick prefers a same-family model near the
target."""

from __future__ import annotations

import pytest

from obscale_bayes.data.tables import load_shipped
from obscale_bayes.fit.fitted import CapabilityModel
from obscale_bayes.forecast.next_eval import (
    rank_evaluations,
    select_batch,
)
from obscale_bayes.model.simulate import simulate


# ---------------------------------------------------------------- a sampled fit (slow)
@pytest.mark.slow
def test_greedy_prefers_same_family_near_the_target():
    fams = ["Pythia", "OPT", "BLOOM", "Llama-2", "Qwen1.5", "GPT-Neo/J"]
    tmpl = load_shipped()
    tmpl = tmpl.subset(list(tmpl.models.loc[tmpl.models["family"].isin(fams), "model"]))
    sim, _ = simulate(tmpl, "default", seed=5)
    fit = CapabilityModel.fit(sim, draws=200, tune=300, chains=2, seed=1, progress=False,
                              cores=1)  # fmt: skip
    top = float(tmpl.models.loc[tmpl.models["family"] == "Pythia", "flops_1e21"].max()) * 1e21
    target = ("Pythia", 10 * top, "gsm8k")
    same = ("Pythia", 5 * top, "gsm8k")
    other = ("OPT", 1e20, "gsm8k")
    r = rank_evaluations(fit, target, [other, same], seed=0)
    assert r.iloc[0]["model"].startswith("Pythia")
    assert r.iloc[0]["fraction_removed"] > 3 * r.iloc[1]["fraction_removed"]
    b = select_batch(fit, target, 1, [other, same], seed=0)
    assert b.iloc[0]["family"] == "Pythia"
