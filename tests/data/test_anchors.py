"""The rule that chooses anchors for a table without the spec's (obscale_bayes.data.anchors)."""

from __future__ import annotations

import numpy as np
import pytest

from obscale_bayes.data.anchors import _scales, choose_anchors
from obscale_bayes.data.reader import read_table
from obscale_bayes.data.tables import load_shipped
from obscale_bayes.errors import DataError


def _reliability(data):
    return _scales(data)[2]


META = "benchmark,display_name,group,floor,n_items,metric_min,metric_max,unit\n"
DEFAULT = ["mmlu", "hellaswag", "humaneval"]


def _table(tmp_path, noisy_items: str):
    """40 models: three benchmarks driven by two latent skills, and 'noisy', a 4-choice task the
    models all score at chance + binomial noise of 100 items (no skill at all)."""
    rng = np.random.default_rng(1)
    s = rng.normal(size=(40, 2))
    inv = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    cols = {
        "a": 0.25 + 0.75 * inv(s[:, 0]),
        "b": 0.25 + 0.75 * inv(0.8 * s[:, 0] + 0.6 * s[:, 1]),
        "c": 0.25 + 0.75 * inv(s[:, 1] - 1),
        "noisy": rng.binomial(100, 0.25, 40) / 100,
    }
    rows = ["model,family," + ",".join(cols)]
    for i in range(40):
        rows.append(f"m{i},F{i % 8}," + ",".join(f"{v[i]:.4f}" for v in cols.values()))
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    meta = META + "".join(f"{b},{b},user,0.25,1000,0,1,fraction\n" for b in "abc")
    meta += f"noisy,noisy,user,0.25,{noisy_items},0,1,fraction\n"
    (tmp_path / "meta.csv").write_text(meta)
    return read_table(tmp_path / "t.csv", extra_benchmarks=tmp_path / "meta.csv")


def test_shipped_leaderboard_v2_anchors():
    """The quick start's OLL v2 fit: the choice docs/data.md and the README show."""
    v2 = load_shipped("leaderboard_v2")
    anchors, chosen = choose_anchors(v2, 3, DEFAULT)
    assert anchors == chosen == ["mmlu_pro", "ifeval", "math_lvl5"]
    rel = _reliability(v2)
    assert rel["mmlu_pro"] > 0.99 and 0.6 < rel["gpqa"] < 0.9 and rel["musr"] < rel["gpqa"]


def test_spec_anchors_with_scores_keep_their_slots():
    base = load_shipped()
    assert choose_anchors(base, 3, DEFAULT) == (DEFAULT, [])
    anchors, chosen = choose_anchors(base.subset(benchmarks=[b for b in base.benchmark_ids
                                                             if b != "hellaswag"]), 3, DEFAULT)  # fmt: skip
    assert anchors[0] == "mmlu" and anchors[2] == "humaneval" and chosen == [anchors[1]]
    assert anchors[1] not in DEFAULT


def test_a_task_scored_at_chance_plus_noise_is_no_anchor(tmp_path):
    """Around its floor the clip of the anchor scale stretches sampling noise into a large
    spread; the reliability factor removes it.  With no item count known (reliability 1) the
    noise-only task would take a slot."""
    data = _table(tmp_path, "100")
    rel = _reliability(data)
    assert rel["noisy"] < 0.3 and min(rel[b] for b in "abc") > 0.95
    anchors, _ = choose_anchors(data, 2)
    assert "noisy" not in anchors
    unknown = _table(tmp_path, "")
    assert _reliability(unknown)["noisy"] == 1.0
    assert "noisy" in choose_anchors(unknown, 2)[0]


def test_too_few_benchmarks_is_a_one_line_error():
    base = load_shipped()
    with pytest.raises(DataError, match="cannot anchor 3 capabilities; lower n_factors"):
        choose_anchors(base.subset(benchmarks=["mmlu", "arc_c", "gsm8k"]), 3)
