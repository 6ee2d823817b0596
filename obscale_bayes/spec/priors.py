r"""Typed priors: one small frozen dataclass per distribution family a spec may name.

A spec file writes a prior as a TOML table, ``misfit = { dist = "halfnormal", sigma = 0.05 }``.
:func:`parse_prior` turns that dict into a :class:`Prior` (validating it, with one-line
:class:`~obscale_bayes.errors.SpecError` messages naming the file and key), and every consumer
uses the same object:

* :meth:`Prior.to_pymc` creates the PyMC random variable (:mod:`obscale_bayes.model.build`);
* :meth:`Prior.draw` draws from it with NumPy (:mod:`obscale_bayes.model.simulate`, and the
  heads of benchmarks a fit has never seen in :mod:`obscale_bayes.forecast.next_eval`);
* :meth:`Prior.to_dict` gives back the dict form, which is what spec JSON (and so every fit
  file) stores.

The families and their parameters (PyMC's parametrisation; NumPy draws match it):

======================  ==========================  ====================================
``dist``                parameters                  density
======================  ==========================  ====================================
``normal``              ``mu``, ``sigma > 0``       :math:`N(\mu, \sigma)`
``halfnormal``          ``sigma > 0``               :math:`|N(0, \sigma)|`
``exponential``         ``lam > 0``                 rate :math:`\lambda` (mean :math:`1/\lambda`)
``lognormal``           ``mu``, ``sigma > 0``       :math:`\exp N(\mu, \sigma)`
``beta``                ``alpha, beta > 0``         :math:`\mathrm{Beta}(\alpha, \beta)`
``uniform``             ``lower < upper``           :math:`U(\mathrm{lower}, \mathrm{upper})`
``gamma``               ``alpha, beta > 0``         shape :math:`\alpha`, rate :math:`\beta`
======================  ==========================  ====================================
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from obscale_bayes.errors import SpecError

__all__ = [
    "PRIOR_FAMILIES",
    "Beta",
    "Exponential",
    "Gamma",
    "HalfNormal",
    "LogNormal",
    "Normal",
    "Prior",
    "Uniform",
    "parse_prior",
]


@dataclass(frozen=True)
class Prior(ABC):
    """Base of the prior families; subclasses are frozen dataclasses of float parameters."""

    #: The ``dist`` name a spec file uses.
    dist: ClassVar[str]
    #: Parameters that must be strictly positive.
    positive: ClassVar[tuple[str, ...]] = ()
    #: Whether the support is the non-negative half line (allowed for ``positive_loading``).
    nonnegative_support: ClassVar[bool] = False

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """The spec-file form ``{"dist": ..., <params>}`` (what spec JSON stores)."""
        return {"dist": self.dist, **{n: getattr(self, n) for n in self.param_names()}}

    def check(self, where: str, key: str) -> None:
        """Validate the parameter values (one-line SpecError); families add their constraints."""
        for p in self.positive:
            v = getattr(self, p)
            if v <= 0:
                raise SpecError(f"{where}: prior '{key}' parameter '{p}' must be > 0, got {v:g}")

    @abstractmethod
    def to_pymc(self, name: str, **kwargs: Any):
        """The PyMC random variable ``name`` with this prior (``kwargs``: dims, shape, ...)."""

    @abstractmethod
    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """NumPy draws of ``shape`` from this prior."""


@dataclass(frozen=True)
class Normal(Prior):
    mu: float
    sigma: float
    dist: ClassVar[str] = "normal"
    positive: ClassVar[tuple[str, ...]] = ("sigma",)

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.Normal(name, mu=self.mu, sigma=self.sigma, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.normal(self.mu, self.sigma, shape)


@dataclass(frozen=True)
class HalfNormal(Prior):
    sigma: float
    dist: ClassVar[str] = "halfnormal"
    positive: ClassVar[tuple[str, ...]] = ("sigma",)
    nonnegative_support: ClassVar[bool] = True

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.HalfNormal(name, sigma=self.sigma, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return np.abs(rng.normal(0.0, self.sigma, shape))


@dataclass(frozen=True)
class Exponential(Prior):
    lam: float
    dist: ClassVar[str] = "exponential"
    positive: ClassVar[tuple[str, ...]] = ("lam",)
    nonnegative_support: ClassVar[bool] = True

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.Exponential(name, lam=self.lam, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.exponential(1.0 / self.lam, shape)


@dataclass(frozen=True)
class LogNormal(Prior):
    mu: float
    sigma: float
    dist: ClassVar[str] = "lognormal"
    positive: ClassVar[tuple[str, ...]] = ("sigma",)
    nonnegative_support: ClassVar[bool] = True

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.LogNormal(name, mu=self.mu, sigma=self.sigma, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, shape)


@dataclass(frozen=True)
class Beta(Prior):
    alpha: float
    beta: float
    dist: ClassVar[str] = "beta"
    positive: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.Beta(name, alpha=self.alpha, beta=self.beta, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, shape)


@dataclass(frozen=True)
class Uniform(Prior):
    lower: float
    upper: float
    dist: ClassVar[str] = "uniform"

    def check(self, where: str, key: str) -> None:
        super().check(where, key)
        if self.upper <= self.lower:
            raise SpecError(
                f"{where}: prior '{key}' needs lower < upper, got {self.lower} >= {self.upper}"
            )

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.Uniform(name, lower=self.lower, upper=self.upper, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.uniform(self.lower, self.upper, shape)


@dataclass(frozen=True)
class Gamma(Prior):
    alpha: float
    beta: float
    dist: ClassVar[str] = "gamma"
    positive: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    nonnegative_support: ClassVar[bool] = True

    def to_pymc(self, name: str, **kwargs: Any):
        import pymc as pm

        return pm.Gamma(name, alpha=self.alpha, beta=self.beta, **kwargs)

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        # NumPy's gamma takes a scale, PyMC's beta is a rate
        return rng.gamma(self.alpha, 1.0 / self.beta, shape)


#: Every family a spec may name, by its ``dist``: the one dispatch of parsing.
PRIOR_FAMILIES: dict[str, type[Prior]] = {
    c.dist: c for c in (Normal, HalfNormal, Exponential, LogNormal, Beta, Uniform, Gamma)
}


def _number(where: str, key: str, p: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpecError(
            f"{where}: prior '{key}' parameter '{p}' must be a finite number, got {v!r}"
        )
    return float(v)


def parse_prior(where: str, key: str, value: Any) -> Prior:
    """Validate a prior given as a spec-file dict (or a :class:`Prior`) and type it.

    Parameters
    ----------
    where : str
        The spec's source (file path), for the error message.
    key : str
        The prior's name in ``[priors]``.
    value : dict or Prior
        ``{"dist": ..., <params>}`` as in a spec file, or an already typed prior.

    Raises
    ------
    SpecError
        One line naming ``where`` and ``key``: not a table, unknown ``dist``, unknown or
        missing parameters, non-finite or non-positive values, ``lower >= upper``.
    """
    if isinstance(value, Prior):
        value = value.to_dict()
    if not isinstance(value, dict) or "dist" not in value:
        raise SpecError(
            f"{where}: prior '{key}' must be a table like {{dist = \"normal\", mu = 0, sigma = 1}}"
        )
    dist = value["dist"]
    cls = PRIOR_FAMILIES.get(dist) if isinstance(dist, str) else None
    if cls is None:
        raise SpecError(
            f"{where}: prior '{key}' has unknown dist '{dist}'; use one of {', '.join(PRIOR_FAMILIES)}"
        )
    names = cls.param_names()
    extra = set(value) - set(names) - {"dist"}
    if extra:
        raise SpecError(
            f"{where}: prior '{key}' ({dist}) has unknown parameter(s) {sorted(extra)}; it takes {list(names)}"
        )
    params: dict[str, float] = {}
    for p in names:
        if p not in value:
            raise SpecError(f"{where}: prior '{key}' ({dist}) is missing parameter '{p}'")
        params[p] = _number(where, key, p, value[p])
    prior = cls(**params)
    prior.check(where, key)
    return prior
