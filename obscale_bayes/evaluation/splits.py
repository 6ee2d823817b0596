"""Train/test splits for backtests, as pure functions over a models table.

The models table is a :class:`pandas.DataFrame` indexed by model id (or with a ``model`` column)
with columns ``family``, ``flops_1e21`` (units of 1e21 FLOPs, NaN = unknown) and, optionally,
``params_b`` (billions of parameters).  Every function returns a :class:`Split` with boolean
``train`` and ``test`` masks aligned to the table's index; a model that is in neither (dropped) has
both False.  Nonsense inputs raise :class:`~obscale_bayes.errors.UsageError`.

A split can also be written as text (:func:`parse_split`, the ``split`` argument of
:func:`~obscale_bayes.evaluation.cases.build_case` and the CLI's ``--split``)::

    cutoff:84[:unknown=test|drop]   train = FLOPs <= 84e21 (unknown FLOPs go to test by default)
    top:0.1                         test = the top int(0.1 n) models by the target
    family:NAME[:k=1]               leave one family out, keeping its k smallest models in train
    random:0.2[:seed=0]             a random 20% of the models in test
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError

__all__ = [
    "SPLIT_FORMS",
    "Split",
    "SplitSpec",
    "flops_cutoff",
    "leave_family_out",
    "parse_split",
    "random_split",
    "top_fraction",
]

SPLIT_FORMS = (
    "cutoff:FLOPS_1E21[:unknown=test|drop], top:FRAC, family:NAME[:k=K], random:FRAC[:seed=S]"
)


@dataclass(frozen=True)
class Split:
    """Boolean train/test masks over one table.

    Attributes
    ----------
    train, test : pandas.Series of bool
        Masks aligned to the table's index (never both True).
    ids : pandas.Series
        Model id per row (the ``model`` column if there is one, else the index).
    """

    train: pd.Series
    test: pd.Series
    ids: pd.Series

    @property
    def train_ids(self) -> list:
        """Model ids of the training models, in table order."""
        return list(self.ids[self.train])

    @property
    def test_ids(self) -> list:
        """Model ids of the test models, in table order."""
        return list(self.ids[self.test])

    @property
    def dropped_ids(self) -> list:
        """Model ids in neither set."""
        return list(self.ids[~(self.train | self.test)])


def _ids(table: pd.DataFrame | pd.Series) -> pd.Series:
    if isinstance(table, pd.DataFrame) and "model" in table.columns:
        return table["model"]
    return pd.Series(table.index, index=table.index)


def _make(table, train: np.ndarray, test: np.ndarray, what: str) -> Split:
    train = pd.Series(np.asarray(train, dtype=bool), index=table.index, name="train")
    test = pd.Series(np.asarray(test, dtype=bool), index=table.index, name="test")
    if not train.any():
        raise UsageError(f"{what}: the training set is empty")
    if not test.any():
        raise UsageError(f"{what}: the test set is empty")
    return Split(train, test, _ids(table))


def _need(models: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    if not isinstance(models, pd.DataFrame):
        raise UsageError(f"{what}: models must be a pandas DataFrame")
    if len(models) == 0:
        raise UsageError(f"{what}: the models table is empty")
    missing = [c for c in cols if c not in models.columns]
    if missing:
        raise UsageError(f"{what}: the models table lacks column(s) {', '.join(missing)}")


def flops_cutoff(
    models: pd.DataFrame,
    cutoff_1e21: float,
    unknown: Literal["test", "drop"] = "test",
) -> Split:
    """Train on models with FLOPs ``<=`` a cutoff, test on the rest.

    Parameters
    ----------
    models : pandas.DataFrame
        Needs ``flops_1e21``.
    cutoff_1e21 : float
        Cutoff in units of 1e21 FLOPs; ``<=`` as in the paper (84 keeps Llama-2-7B in train).
    unknown : {"test", "drop"}
        Models without FLOPs go to test (the paper's GSM8K setting) or are dropped.
    """
    what = "flops_cutoff"
    _need(models, ("flops_1e21",), what)
    if not np.isfinite(cutoff_1e21) or cutoff_1e21 <= 0:
        raise UsageError(f"{what}: cutoff_1e21 must be a positive number, got {cutoff_1e21}")
    if unknown not in ("test", "drop"):
        raise UsageError(f"{what}: unknown must be 'test' or 'drop', not {unknown!r}")
    flops = pd.to_numeric(models["flops_1e21"], errors="coerce")
    known = flops.notna().to_numpy()
    train = known & (flops <= cutoff_1e21).to_numpy()
    test = (known & ~train) | (~known if unknown == "test" else False)
    return _make(models, train, test, what)


def top_fraction(target: pd.Series, frac: float = 0.1) -> Split:
    """Hold out the top ``int(frac * n)`` models by target (the paper's agent split).

    Models with a missing target are dropped and do not count in ``n``; ties at the boundary are
    broken by table order.
    """
    what = "top_fraction"
    if not isinstance(target, pd.Series):
        raise UsageError(f"{what}: target must be a pandas Series")
    if not 0.0 < frac < 1.0:
        raise UsageError(f"{what}: frac must be in (0, 1), got {frac}")
    y = pd.to_numeric(target, errors="coerce")
    known = y.notna()
    n_test = int(frac * int(known.sum()))
    if n_test < 1:
        raise UsageError(f"{what}: int({frac} * {int(known.sum())}) = 0 test models")
    order = np.argsort(-y.fillna(-np.inf).to_numpy(), kind="stable")
    test = np.zeros(len(y), dtype=bool)
    test[order[:n_test]] = True
    return _make(target, known.to_numpy() & ~test, test, what)


def leave_family_out(
    models: pd.DataFrame,
    family: str,
    k_smallest: int = 1,
) -> Split:
    """Hold out one family except its ``k_smallest`` models (Sloth's protocol).

    Train = all other families + the ``k_smallest`` smallest models of ``family`` (by FLOPs; by
    ``params_b`` where FLOPs are unknown for that family); test = the rest of ``family``.
    """
    what = "leave_family_out"
    _need(models, ("family",), what)
    if int(k_smallest) != k_smallest or k_smallest < 0:
        raise UsageError(f"{what}: k_smallest must be a non-negative integer, got {k_smallest}")
    fam = models["family"].astype(str)
    if family not in set(fam):
        fams = sorted(set(fam))
        shown = ", ".join(fams[:40]) + (", ..." if len(fams) > 40 else "")
        raise UsageError(f"{what}: unknown family {family!r}; choose from {shown}")
    members = fam == family
    if members.sum() <= k_smallest:
        raise UsageError(
            f"{what}: family {family!r} has {int(members.sum())} model(s); "
            f"need more than k_smallest={k_smallest}"
        )
    sub = models[members]
    size = None
    if "flops_1e21" in sub and pd.to_numeric(sub["flops_1e21"], errors="coerce").notna().all():
        size = pd.to_numeric(sub["flops_1e21"], errors="coerce")
    elif "params_b" in sub and pd.to_numeric(sub["params_b"], errors="coerce").notna().all():
        size = pd.to_numeric(sub["params_b"], errors="coerce")
    if size is None and k_smallest > 0:
        raise UsageError(f"{what}: family {family!r} lacks FLOPs and params_b to rank its models")
    keep = np.zeros(len(models), dtype=bool)
    if k_smallest > 0:
        smallest = size.sort_values(kind="stable").index[: int(k_smallest)]
        keep = models.index.isin(smallest)
    members_arr = members.to_numpy()
    return _make(models, ~members_arr | keep, members_arr & ~keep, what)


def random_split(models: pd.DataFrame, frac_test: float, seed: int = 0) -> Split:
    """A uniformly random test set of ``int(frac_test * n)`` models (at least one)."""
    what = "random_split"
    if not isinstance(models, (pd.DataFrame, pd.Series)) or len(models) == 0:
        raise UsageError(f"{what}: models must be a non-empty pandas DataFrame")
    if not 0.0 < frac_test < 1.0:
        raise UsageError(f"{what}: frac_test must be in (0, 1), got {frac_test}")
    n = len(models)
    n_test = max(1, int(frac_test * n))
    if n_test >= n:
        raise UsageError(f"{what}: {n} model(s) cannot be split with frac_test={frac_test}")
    perm = np.random.default_rng(seed).permutation(n)
    test = np.zeros(n, dtype=bool)
    test[perm[:n_test]] = True
    return _make(models, ~test, test, what)


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split (:func:`parse_split`): ``kind`` in cutoff/top/family/random and its settings."""

    kind: str
    value: float = float("nan")
    family: str = ""
    k: int = 1
    seed: int = 0
    unknown: str = "test"

    @property
    def label(self) -> str:
        """Short text for tables (``flops<=84e21``, ``top10%``, ``family=X,k=1``, ...)."""
        if self.kind == "cutoff":
            tail = "" if self.unknown == "test" else ",unknown dropped"
            return f"flops<={self.value:g}e21{tail}"
        if self.kind == "top":
            return f"top{self.value * 100:g}%"
        if self.kind == "family":
            return f"family={self.family},k={self.k}"
        return f"random{self.value * 100:g}%,seed={self.seed}"

    def apply(self, models: pd.DataFrame, target: pd.Series) -> Split:
        """The train/test masks over ``models`` (``target``: the transformed target)."""
        if self.kind == "cutoff":
            return flops_cutoff(models, self.value, unknown=self.unknown)
        if self.kind == "top":
            return top_fraction(target, self.value)
        if self.kind == "family":
            return leave_family_out(models, self.family, self.k)
        return random_split(models, self.value, self.seed)


def _bad_split(text: str) -> UsageError:
    return UsageError(f"split: cannot read {text!r}; expected one of {SPLIT_FORMS}")


def _number(text: str, whole: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _bad_split(whole) from None
    if not np.isfinite(v):
        raise _bad_split(whole)
    return v


def _options(parts: list[str], allowed: dict[str, type], whole: str) -> dict:
    out = {}
    for p in parts:
        key, eq, val = p.partition("=")
        if not eq or key not in allowed or key in out:
            raise _bad_split(whole)
        if allowed[key] is int:
            try:
                out[key] = int(val)
            except ValueError:
                raise _bad_split(whole) from None
        else:
            out[key] = val
    return out


def parse_split(text: str) -> SplitSpec:
    """Parse a split written as text (see the module docstring); one-line errors naming ``split``."""
    t = str(text).strip()
    kind, _, rest = t.partition(":")
    if kind not in ("cutoff", "top", "family", "random") or not rest:
        raise _bad_split(t)
    if kind == "family":
        # family names may hold ':' -- only a trailing ':k=N' is an option
        m = re.match(r"^(.*?)(?::k=([^:]*))?$", rest)
        name, k = m.group(1).strip(), m.group(2)
        if not name:
            raise _bad_split(t)
        try:
            kv = 1 if k is None else int(k)
        except ValueError:
            raise _bad_split(t) from None
        if kv < 0:
            raise UsageError(f"split: k must be a non-negative integer in {t!r}")
        return SplitSpec("family", family=name, k=kv)
    head, *opts = rest.split(":")
    v = _number(head, t)
    if kind == "cutoff":
        o = _options(opts, {"unknown": str}, t)
        unknown = o.get("unknown", "test")
        if v <= 0 or unknown not in ("test", "drop"):
            raise UsageError(
                f"split: {t!r}: the cutoff (units of 1e21 FLOPs) must be positive and "
                "unknown= must be test or drop"
            )
        return SplitSpec("cutoff", value=v, unknown=unknown)
    if not 0.0 < v < 1.0:
        raise UsageError(f"split: {t!r}: the fraction must lie strictly between 0 and 1")
    if kind == "top":
        _options(opts, {}, t)
        return SplitSpec("top", value=v)
    o = _options(opts, {"seed": int}, t)
    return SplitSpec("random", value=v, seed=o.get("seed", 0))
