"""Fixtures shared by the whole suite, built on :mod:`obscale_bayes.testing`.

Session-scoped, so each table or fit is made once per run: the shipped table, a ~50-model
subset of it, a known-truth fit (posterior = the simulation's truth, no sampling) and a
mock-sampled fit (posterior = prior draws of the real graph). Tests that need real NUTS make
their own small fit per module (``obscale_bayes.testing.small_fit``), sized to what they check.
"""

from __future__ import annotations

import pytest

from obscale_bayes import testing
from obscale_bayes.data.tables import BenchmarkData, load_shipped
from obscale_bayes.fit.fitted import CapabilityModel


@pytest.fixture(scope="session")
def shipped() -> BenchmarkData:
    """The shipped table's default view: 128 base models x the 8 standard benchmarks."""
    return load_shipped()


@pytest.fixture(scope="session")
def subset() -> BenchmarkData:
    """The shipped table restricted to :data:`obscale_bayes.testing.SMALL_FAMILIES`."""
    return testing.shipped_subset()


@pytest.fixture(scope="session")
def k1_truth_fit() -> CapabilityModel:
    """K = 1 data simulated with the shipped layout (seed 3) and a posterior that is its truth."""
    data, truth = testing.synthetic_table("k1", 3)
    return testing.truth_fit(data, truth, "k1")


@pytest.fixture(scope="session")
def mock_fit(subset) -> CapabilityModel:
    """The default model on :func:`subset` with 2 x 50 prior draws as its posterior."""
    return testing.prior_fit(subset, "default", draws=50, chains=2, seed=0)


@pytest.fixture(scope="session", autouse=True)
def _job_store(tmp_path_factory):
    """Point the CLI's default job store (``runs/jobs``) at a temporary folder, for this process
    and the subprocesses tests start, so that no test writes into the working tree."""
    import os

    from obscale_bayes.cli.args import STORE_ENV

    old = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(tmp_path_factory.mktemp("jobs"))
    yield
    if old is None:
        os.environ.pop(STORE_ENV, None)
    else:
        os.environ[STORE_ENV] = old
