"""Posterior and backtest figures: drawn from a simulated posterior whose truth is known.

The "fit" here is a :class:`CapabilityModel` whose posterior is the simulation truth plus small
Gaussian jitter (no sampling), so every number a figure shows has a known answer: the tests check
the content of the figures (panels, lines, points, labels, bands) against it.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

matplotlib.use("Agg")

from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from obscale_bayes.data.tables import load_shipped  # noqa: E402
from obscale_bayes.errors import UsageError  # noqa: E402
from obscale_bayes.evaluation.cases import BacktestCase  # noqa: E402
from obscale_bayes.evaluation.metrics import (
    calibration_curve,  # noqa: E402
    score_draws,  # noqa: E402
)
from obscale_bayes.fit.fitted import CapabilityModel  # noqa: E402
from obscale_bayes.model.simulate import simulate  # noqa: E402
from obscale_bayes.plots.holdout import (  # noqa: E402
    coverage_table,
    plot_calibration,
    plot_holdout,
)
from obscale_bayes.plots.parameters import (  # noqa: E402
    efficiency_table,
    loadings_table,
    plot_efficiency_forest,
    plot_loadings,
)
from obscale_bayes.plots.posterior import (  # noqa: E402
    capability_table,
    family_trend,
    plot_capability_vs_compute,
)
from obscale_bayes.spec.spec import load_spec  # noqa: E402

JITTER = 0.05
N_CHAIN, N_DRAW = 2, 100
ZERO_LOADING = ("arc_c", "humaneval")  # a loading set to 0: its interval must contain 0


@pytest.fixture(scope="module")
def sim():
    spec = load_spec("default")
    data, truth = simulate(load_shipped(), spec, seed=3)
    lam = truth["loading"].copy()
    lam.loc[{"benchmark": ZERO_LOADING[0], "factor": ZERO_LOADING[1]}] = 0.0
    truth = truth.assign(loading=lam)
    rng = np.random.default_rng(0)
    post = {}
    for name in ("capability", "efficiency", "slope", "efficiency_mean", "efficiency_sd",
                 "slope_mean", "slope_sd", "residual_sd", "loading", "intercept", "floor",
                 "misfit", "x_latent"):  # fmt: skip
        if name not in truth:  # slope_sd: only with family slopes
            continue
        t = truth[name]
        noise = JITTER * rng.standard_normal((N_CHAIN, N_DRAW) + t.shape)
        if name == "loading":  # anchors stay exact, as in a real fit
            noise = noise * (~t["benchmark"].isin(spec.anchors)).values[:, None]
        if name in ("efficiency_sd", "slope_sd", "residual_sd", "misfit"):
            noise = np.abs(noise) * 0.1
        if name in ("floor", "intercept", "misfit"):
            noise = noise * 0
        post[name] = xr.DataArray(t.values + noise, dims=("chain", "draw", *t.dims),
                                  coords={d: t[d].values for d in t.dims})  # fmt: skip
    post = xr.Dataset(post, coords={"chain": range(N_CHAIN), "draw": range(N_DRAW)})
    fit = CapabilityModel(spec, data, xr.DataTree.from_dict({"posterior": post}), None, {})
    return fit, truth


def _render(fig) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=40)  # draws every artist: catches draw errors


def _axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


# ---------------------------------------------------------------- capabilities vs compute
def test_capability_table_matches_truth(sim):
    fit, truth = sim
    tab = capability_table(fit, ci=0.9)
    assert len(tab) == 128 * 3
    med = tab.pivot(index="model", columns="factor", values="median")
    t = truth["capability"].to_pandas()
    np.testing.assert_allclose(med.loc[t.index, t.columns], t, atol=4 * JITTER / 10 + 0.02)
    assert (tab["lower"] <= tab["median"]).all() and (tab["median"] <= tab["upper"]).all()
    lat = tab.drop_duplicates("model").set_index("model")
    unknown = fit.data.models.set_index("model")["flops_1e21"].isna()
    assert lat["flops_latent"].equals(unknown.loc[lat.index].rename("flops_latent"))
    # known FLOPs: exactly log10 of the table's FLOPs; latent: at the true latent value
    known = fit.data.models.dropna(subset=["flops_1e21"]).set_index("model")["flops_1e21"]
    np.testing.assert_allclose(lat.loc[known.index, "log10_flops"], np.log10(known) + 21)
    xl = truth["x_latent"].to_pandas() + 1.5 + 21
    np.testing.assert_allclose(lat.loc[xl.index, "log10_flops"], xl, atol=0.03)
    assert (lat.loc[xl.index, "log10_flops_upper"] > lat.loc[xl.index, "log10_flops_lower"]).all()


def test_family_trend_is_the_family_line(sim):
    fit, truth = sim
    g = np.array([21.0, 22.5, 24.0])
    tr = family_trend(fit, "Llama-2", g).set_index(["factor", "log10_flops"])
    for f in ("mmlu", "hellaswag", "humaneval"):
        a = float(truth["efficiency"].sel(family="Llama-2", factor=f))
        b = float(truth["slope"].sel(family="Llama-2", factor=f))
        want = a + b * (g - 22.5)
        got = tr.loc[f, "median"].to_numpy()
        np.testing.assert_allclose(got, want, atol=0.05)
        assert (tr.loc[f, "lower"] < tr.loc[f, "median"]).all()
        assert (tr.loc[f, "median"] < tr.loc[f, "upper"]).all()
    # the band widens away from the centre of the compute axis: slope uncertainty
    w = (tr["upper"] - tr["lower"]).xs("mmlu")
    assert w.loc[24.0] > w.loc[22.5] and w.loc[21.0] > w.loc[22.5]
    with pytest.raises(UsageError, match="unknown family"):
        family_trend(fit, "NoSuchFamily", g)


def test_capability_figure_content(sim):
    fit, _ = sim
    fams = ["Llama-2", "Pythia", "Mistral"]  # Mistral's FLOPs are latent
    fig = plot_capability_vs_compute(fit, families=fams, ci=0.8)
    _render(fig)
    axes = _axes(fig)
    assert len(axes) == 3  # one panel per capability
    tab = capability_table(fit, ci=0.8)
    for ax, fac in zip(axes, ["mmlu", "hellaswag", "humaneval"], strict=True):
        assert ax.get_xlabel() == "log10 training FLOPs"
        assert "capability" in ax.get_ylabel() and fac in ax.get_title()
        lines = [ln for ln in ax.get_lines() if ln.get_label() in fams]
        assert [ln.get_label() for ln in lines] == fams  # one trend line per family
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == len(fams)
        for ln, band in zip(lines, bands, strict=True):
            # the band contains the median line everywhere
            verts = band.get_paths()[0].vertices
            x, y = ln.get_xdata(), ln.get_ydata()
            lo = np.interp(x, *_edge(verts, lower=True))
            hi = np.interp(x, *_edge(verts, lower=False))
            assert np.all(lo <= y + 1e-9) and np.all(y <= hi + 1e-9)
        pts = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(pts) == len(fams)
        for fam, pc in zip(fams, pts, strict=True):
            t = tab[(tab["family"] == fam) & (tab["factor"] == fac)]
            np.testing.assert_allclose(pc.get_offsets()[:, 1], t["median"])
            np.testing.assert_allclose(pc.get_offsets()[:, 0], t["log10_flops"])
            hollow = pc.get_facecolors()[:, 3] == 0
            assert hollow.sum() == t["flops_latent"].sum()
    assert len(fit.data.models.query("family == 'Mistral'")) > 0


def _edge(verts: np.ndarray, lower: bool) -> tuple[np.ndarray, np.ndarray]:
    """fill_between polygon -> (x, y) of its lower or upper edge, sorted by x."""
    n = (len(verts) - 1) // 2  # first n+? points run along one edge, then back along the other
    xs, ys = verts[:, 0], verts[:, 1]
    pts = {}
    for x, y in zip(xs, ys, strict=True):
        pts.setdefault(round(float(x), 9), []).append(float(y))
    x = np.array(sorted(pts))
    y = np.array([min(pts[k]) if lower else max(pts[k]) for k in sorted(pts)])
    assert n > 0
    return x, y


def test_capability_figure_defaults_and_errors(sim):
    fit, _ = sim
    fig = plot_capability_vs_compute(fit, factors="humaneval")
    axes = _axes(fig)
    assert len(axes) == 1
    counts = fit.data.models["family"].value_counts()
    n_lines = [ln for ln in axes[0].get_lines() if ln.get_label() in counts.index]
    assert len(n_lines) == 6  # the six largest families
    assert {ln.get_label() for ln in n_lines} <= set(counts.index[counts >= counts.iloc[5]])
    with pytest.raises(UsageError, match="unknown factor"):
        plot_capability_vs_compute(fit, factors=["gsm8k"])
    with pytest.raises(UsageError, match="unknown family"):
        plot_capability_vs_compute(fit, families=["Nope"])


# ---------------------------------------------------------------- forest plot
def test_efficiency_forest(sim):
    fit, truth = sim
    tab = efficiency_table(fit)
    got = tab.pivot(index="family", columns="factor", values="median")
    want = truth["efficiency"].to_pandas()
    np.testing.assert_allclose(got.loc[want.index, want.columns], want, atol=0.03)
    assert ((tab["lower"] <= tab["lower50"]) & (tab["upper50"] <= tab["upper"])).all()
    fig = plot_efficiency_forest(fit, factors=["mmlu", "humaneval"])
    _render(fig)
    axes = _axes(fig)
    assert len(axes) == 2
    n_fam = truth.sizes["family"]
    for ax, fac in zip(axes, ["mmlu", "humaneval"], strict=True):
        labels = [t.get_text().rsplit(" (", 1)[0] for t in ax.get_yticklabels()]
        assert len(labels) == n_fam
        t = tab[tab["factor"] == fac].set_index("family")
        meds = t.loc[labels, "median"].to_numpy()
        assert np.all(np.diff(meds) >= 0)  # sorted by the posterior median
        pts = [c for c in ax.collections if isinstance(c, PathCollection)][0]
        np.testing.assert_allclose(pts.get_offsets()[:, 0], meds)
        # population mean: a vertical line at its median inside a shaded interval
        pop = float(truth["efficiency_mean"].sel(factor=fac))
        vline = [ln for ln in ax.get_lines() if np.ptp(ln.get_xdata()) == 0][0]
        assert vline.get_xdata()[0] == pytest.approx(pop, abs=0.03)
        span = ax.patches[0]  # axvspan: a rectangle in data x, axes y
        assert span.get_x() < vline.get_xdata()[0] < span.get_x() + span.get_width()
        assert "efficiency" in ax.get_xlabel()


# ---------------------------------------------------------------- loadings heat map
def test_loadings_heat_map(sim):
    fit, truth = sim
    tab = loadings_table(fit)
    assert len(tab) == 8 * 3
    anchors = tab[tab["fixed"]]
    assert set(anchors["benchmark"]) == set(fit.spec.anchors)
    assert (anchors["sd"] == 0).all() and not anchors["crosses_zero"].any()
    z = tab.set_index(["benchmark", "factor"])
    assert z.loc[ZERO_LOADING, "crosses_zero"]
    big = (tab["median"].abs() > 5 * JITTER) & ~tab["fixed"]
    assert big.any() and not tab.loc[big, "crosses_zero"].any()
    fig = plot_loadings(fit)
    _render(fig)
    ax = [a for a in fig.axes if a.images][0]
    im = [a for a in ax.get_children() if isinstance(a, AxesImage)][0]
    grid = tab.pivot(index="benchmark", columns="factor", values="median")
    bench = [str(b) for b in truth["benchmark"].values]
    np.testing.assert_allclose(im.get_array(), grid.loc[bench, ["mmlu", "hellaswag", "humaneval"]])
    texts = [t.get_text() for t in ax.texts]
    assert sum("anchor" in t for t in texts) == 3 * 3
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == int(tab["crosses_zero"].sum()) >= 1
    assert ax.get_xlabel().startswith("capability") and ax.get_ylabel() == "benchmark"
    assert len(fig.axes) == 2  # the map and its colour bar


# ---------------------------------------------------------------- calibration
def _cells(rng, n, scale, analysis):
    """Held-out cells whose truth is drawn from N(0, 1) and forecasts from N(0, scale)."""
    y = rng.standard_normal(n)
    draws = scale * rng.standard_normal((400, n))
    return score_draws(y, draws).assign(analysis=analysis, method="bayes", model=range(n))


def test_calibration_known_answers():
    rng = np.random.default_rng(1)
    good = _cells(rng, 400, 1.0, "calibrated")
    narrow = _cells(rng, 400, 0.3, "overconfident")
    cells = pd.concat([good, narrow], ignore_index=True)
    tab = coverage_table(cells).set_index(["analysis", "nominal"])
    for lv in (0.5, 0.8, 0.9, 0.95):
        se = np.sqrt(lv * (1 - lv) / 400)
        assert abs(tab.loc[("calibrated", lv), "empirical"] - lv) < 3.5 * se
        assert tab.loc[("overconfident", lv), "empirical"] < lv - 0.2
    cal = calibration_curve(cells)
    np.testing.assert_allclose(tab.xs("pooled")["empirical"].to_numpy(), cal["empirical"])
    fig = plot_calibration(cells)
    _render(fig)
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    pooled = lines["pooled (800 cells)"]
    np.testing.assert_allclose(pooled.get_ydata(), cal["empirical"])
    assert "calibrated (400 cells)" in lines and "overconfident (400 cells)" in lines
    assert ax.get_xlabel() == "nominal coverage" and "empirical" in ax.get_ylabel()
    with pytest.raises(UsageError, match="no cells of method"):
        coverage_table(cells, method="paper_pca3")
    with pytest.raises(UsageError, match="lack column"):
        plot_calibration(cells.drop(columns="covered90"))


# ---------------------------------------------------------------- held-out panels
def test_holdout_panels():
    rng = np.random.default_rng(2)
    n = 12
    models = pd.DataFrame(
        {"family": ["F"] * n, "params_b": 1.0, "tokens_t": 1.0,
         "flops_1e21": np.logspace(0, 3, n), "a": rng.random(n),
         "raw_target": np.linspace(0, 0.8, n)},
        index=pd.Index([f"m{i}" for i in range(n)], name="model"),
    )  # fmt: skip
    train = pd.Series(np.arange(n) < 9, index=models.index)
    mk = lambda name, m: BacktestCase(name, m, ("a",), "t", train, ~train, "x", chance=0.0)  # noqa: E731
    no_flops = models.assign(flops_1e21=np.nan)
    cases = [mk("with_flops", models), mk("no_flops", no_flops)]
    cells = []
    for c in cases:
        y = c.transform(c.models.loc[~train, "raw_target"])
        d = y + 0.05 * rng.standard_normal((300, 3))
        cells.append(score_draws(y, d).assign(analysis=c.name, method="bayes",
                                              model=list(c.models.index[~train])))  # fmt: skip
        cells.append(pd.DataFrame({"analysis": c.name, "method": "paper_pca3", "y": y,
                                   "mean": y + 0.1, "model": list(c.models.index[~train])}))  # fmt: skip
    cells = pd.concat(cells, ignore_index=True)
    fig = plot_holdout(cases, cells)
    _render(fig)
    axes = _axes(fig)
    assert len(axes) == 2
    assert axes[0].get_xlabel() == "log10 training FLOPs"
    assert axes[1].get_xlabel() == "mean score on the input benchmarks"
    for ax, c in zip(axes, cases, strict=True):
        sc = [c for c in ax.collections if isinstance(c, PathCollection)]
        sizes = sorted(len(c.get_offsets()) for c in sc)
        assert sizes == [3, 3, 9]  # actual, baseline; 9 training models
        b = cells[(cells["analysis"] == c.name) & (cells["method"] == "bayes")]
        (eb,) = ax.containers  # the forecasts: medians with interval bars
        np.testing.assert_allclose(np.asarray(eb.lines[0].get_ydata(), float), b["median"])
        assert "MSE" in ax.get_title() and "coverage" in ax.get_title()
    with pytest.raises(UsageError, match="no Bayesian rows"):
        plot_holdout(cases, cells[cells["analysis"] != "no_flops"])


# ---------------------------------------------------------------- efficiency vs release date
def _slope_in_title(ax) -> float:
    return float(ax.get_title().split("trend ")[1].split(" per year")[0])


def test_efficiency_by_release_shows_an_added_trend(sim):
    from obscale_bayes.plots.parameters import plot_efficiency_by_release, release_table

    fit, _ = sim
    tab = release_table(fit)
    dated = fit.data.models.dropna(subset=["release_date"])["family"].unique()
    assert set(tab["family"]) == set(dated) and tab["year"].between(2019, 2026).all()
    base = _slope_in_title(_axes(plot_efficiency_by_release(fit, factors="mmlu"))[0])
    # add 0.7 per year to the 'mmlu' efficiency of every dated family: the drawn trend follows
    year = tab[tab["factor"] == "mmlu"].set_index("family")["year"]
    post = fit.idata["posterior"].dataset.copy()
    shift = xr.DataArray([0.7 * (year.get(f, 2023.0) - 2023.0) for f in post["family"].values],
                         dims="family", coords={"family": post["family"].values})  # fmt: skip
    eff = post["efficiency"].copy()
    eff.loc[{"factor": "mmlu"}] = eff.sel(factor="mmlu") + shift
    tilted = CapabilityModel(fit.spec, fit.data,
                             xr.DataTree.from_dict({"posterior": post.assign(efficiency=eff)}),
                             None, {})  # fmt: skip
    fig = plot_efficiency_by_release(tilted, factors=["mmlu", "humaneval"])
    _render(fig)
    axes = _axes(fig)
    assert len(axes) == 2
    assert _slope_in_title(axes[0]) == pytest.approx(base + 0.7, abs=0.02)
    pts = [c for c in axes[0].collections if isinstance(c, PathCollection)]
    assert sum(len(p.get_offsets()) for p in pts) == len(year)
    assert "release date" in axes[0].get_xlabel()
