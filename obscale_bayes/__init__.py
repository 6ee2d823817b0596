"""obscale-bayes: Bayesian observational scaling laws for language-model benchmarks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
