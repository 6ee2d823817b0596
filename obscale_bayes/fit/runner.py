"""Many fits at once: ``run_fits(jobs, executor=None)`` over any ``concurrent.futures`` executor.

A *job* is one call of :meth:`CapabilityModel.fit <obscale_bayes.fit.CapabilityModel.fit>`:
a name, the data, the spec, the fit's keyword arguments and, optionally, a *post-processing*
function that turns the fit into a small picklable result (a forecast table, a few
summaries), so that workers need not ship whole posteriors back.

Where the fits run:

- ``executor=None``: a local :class:`~concurrent.futures.ProcessPoolExecutor` with
  ``min(len(jobs), cpu count)`` worker processes, started with ``spawn`` (PyTensor, Numba and
  nutpie hold threads and compiled state that ``fork`` would copy half-initialised).  Each fit
  gets ``cores = max(1, cpu count // workers)`` sampler threads unless its job sets ``cores``.
- a :class:`dask.distributed.Client`: its ``get_executor(pure=False)``; each fit gets as many
  sampler threads as the smallest worker has, unless its job sets ``cores``.
- any other object with ``submit(fn, *args) -> Future`` (a ``concurrent.futures.Executor``,
  ``client.get_executor()``, a ``ThreadPoolExecutor`` ...), used as it is.

With the same seed a job gives the same draws wherever it runs (nutpie seeds each chain from
the job's seed; the number of sampler threads does not change the draws) *provided the
compiled model is the same*: measured with nutpie 0.16 / PyTensor 3.3, a process that compiles a
model afresh draws different chains from one that loads it from PyTensor's on-disk cache (same
seed; the first 100 draws already differ).  So by default (``warm_cache=True``) every distinct
model is compiled once in the calling process before the jobs are dispatched: all workers that
share that cache (local processes, a ``LocalCluster``) then load identical code and give
identical draws, run after run.

Results come back as a dict ``{job name: JobResult}`` in job order.  A failing job raises
:class:`FitJobError` naming the job (``on_error="raise"``, the default; jobs not yet started are
cancelled) or is reported in its :class:`JobResult` (``on_error="collect"``: ``error`` holds the
one-line message and ``value`` is None).  One progress line per finished job goes to the package
logger (:func:`obscale_bayes.progress.report_progress`; shown once the caller turns it on with
:func:`obscale_bayes.progress.enable`, as the CLI does).

Post-processing functions run in the worker, so they must be picklable: module-level
functions or :func:`functools.partial` of them, not lambdas or functions defined in a notebook
(those work with a ``ThreadPoolExecutor``, which needs no pickling).

Resuming: with ``store=`` (a folder or a :class:`~obscale_bayes.fit.jobstore.JobStore`) every
job that finishes is written there at once, atomically, under a key of its name, data, spec,
fit keywords (seed included; ``cores`` and ``progress`` left out, as they do not change the
draws), post-processing function and arguments, and the package's version and source
(:mod:`obscale_bayes.fit.jobstore`).  Run the same jobs with the same store again and the
finished ones are taken from it ("skipped N finished jobs from DIR" on the logger; their
:attr:`JobResult.from_store` is true) and only the others run: a killed sweep picks up where it
stopped, with the numbers an uninterrupted run gives.  A job whose inputs changed has another key
and runs again; failed jobs are never stored.  Ctrl-C (``KeyboardInterrupt``) cancels the jobs
not yet started and stops the local pool's workers (which ignore SIGINT themselves, so Ctrl-C
in a terminal stops the run once, from here); no partial file is left.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from obscale_bayes.errors import ObscaleError, UsageError, one_line
from obscale_bayes.fit.jobstore import JobStore, as_store
from obscale_bayes.progress import get_logger, report_progress

if TYPE_CHECKING:  # pragma: no cover
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.fit.diagnostics import Diagnostics
    from obscale_bayes.fit.fitted import CapabilityModel
    from obscale_bayes.spec.spec import ModelSpec

ON_ERROR = ("raise", "collect")
#: Fit keywords left out of a job's store key: they do not change the draws.
NOT_IN_KEY = ("cores", "progress")

log = get_logger(__name__)


class FitJobError(ObscaleError):
    """A fit job failed; the message names the job (the original exception is the cause)."""


@dataclass(frozen=True)
class FitJob:
    """One fit to run.

    Attributes
    ----------
    name : str
        Label of the job (unique within a run); results are keyed by it.
    data : BenchmarkData
        Training table.
    spec : ModelSpec or str
        Spec object, or a variant name / spec file path.
    fit_kwargs : dict
        Keyword arguments of :meth:`CapabilityModel.fit` (``draws``, ``tune``, ``chains``,
        ``seed``, ``cores`` ...); ``progress`` is always off in workers.
    post : callable, optional
        ``post(fit) -> value`` run in the worker; without it the whole fit is returned.
    """

    name: str
    data: BenchmarkData
    spec: ModelSpec | str
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    post: Callable[[CapabilityModel], Any] | None = None


@dataclass
class JobResult:
    """What one job returned.

    Attributes
    ----------
    name : str
        The job's name.
    value : Any
        ``post(fit)``, or the :class:`~obscale_bayes.fit.CapabilityModel` without ``post``;
        None when the job failed.
    diagnostics : Diagnostics or None
        Convergence diagnostics of the fit (None when it failed).
    seconds : float
        Wall time of the job in its worker (fit and post-processing).
    error : str or None
        One-line ``ExceptionType: message`` when the job failed (``on_error="collect"``).
    from_store : bool
        Taken from the job store of an earlier run instead of being run (``seconds`` is then
        that run's).
    """

    name: str
    value: Any
    diagnostics: Diagnostics | None
    seconds: float
    error: str | None = None
    from_store: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _as_job(j: FitJob | Sequence[Any]) -> FitJob:
    if isinstance(j, FitJob):
        return j
    if not isinstance(j, (tuple, list)) or not 3 <= len(j) <= 5:
        raise UsageError(
            "run_fits: each job must be a FitJob or a tuple (name, data, spec[, fit_kwargs[, post]])"
        )
    return FitJob(*j)


def _run_job(job: FitJob, cores: int) -> tuple[Any, Diagnostics, float]:
    """Worker side: fit, post-process, time it."""
    from obscale_bayes.fit.fitted import CapabilityModel

    t0 = time.perf_counter()
    kw = {"cores": cores, **job.fit_kwargs, "progress": False}
    fit = CapabilityModel.fit(job.data, job.spec, **kw)
    value = job.post(fit) if job.post is not None else fit
    return value, fit.diagnostics, time.perf_counter() - t0


def _ignore_sigint() -> None:
    """Initializer of the local pool's workers: Ctrl-C is handled once, by the calling process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the local pool's worker processes now (their running fits are abandoned)."""
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    for p in list((getattr(pool, "_processes", None) or {}).values()):  # 3.12, 3.13: no API
        p.terminate()


def job_key(store: JobStore, job: FitJob) -> str:
    """The key of ``job`` in ``store``: name, data, spec, fit keywords (without
    :data:`NOT_IN_KEY`), post-processing function and the environment."""
    from obscale_bayes.spec.spec import ModelSpec, load_spec

    spec = job.spec
    if not isinstance(spec, ModelSpec):
        try:
            spec = load_spec(spec)
        except Exception:  # noqa: S110 - a bad spec fails in its worker, where it is named
            pass
    kw = {k: v for k, v in job.fit_kwargs.items() if k not in NOT_IN_KEY}
    return store.key("fit", job.name, job.data, spec, kw, job.post)


def warm_compile_cache(jobs: Sequence[FitJob]) -> int:
    """Compile each distinct nutpie model of ``jobs`` once here, filling PyTensor's disk cache.

    Returns the number of models compiled.  See the module docstring for why.
    """
    import nutpie

    from obscale_bayes.model.build import build_model
    from obscale_bayes.spec.spec import ModelSpec, load_spec

    seen: set[tuple[str, str]] = set()
    for j in jobs:
        if j.fit_kwargs.get("sampler", "nutpie") != "nutpie":
            continue
        try:
            spec = j.spec if isinstance(j.spec, ModelSpec) else load_spec(j.spec)
            key = (j.data.fingerprint(), spec.to_json())
            if key in seen:
                continue
            seen.add(key)
            nutpie.compile_pymc_model(build_model(j.data, spec))
        except Exception:  # noqa: S112 - a bad job fails in its worker, where it is reported by name
            continue
    return len(seen)


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__module__.startswith("distributed") and hasattr(obj, "get_executor")


def _dask_threads(client: Any) -> int:
    try:
        threads = list(client.nthreads().values())
    except Exception:  # an old or unusual client: one thread is always safe
        return 1
    return max(1, min(threads)) if threads else 1


def n_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(n_jobs: int) -> int:
    """Worker processes of the default pool: one per job, at most one per CPU."""
    return max(1, min(n_jobs, n_cpus()))


def _progress_what(res: JobResult) -> str:
    if not res.ok:
        return f"fit '{res.name}' FAILED: {res.error}"
    d = res.diagnostics
    if d.approximate:
        state = "loss at its plateau" if d.passed else "loss still falling"
        return f"fit '{res.name}' done in {res.seconds:.1f} s ({d.inference.upper()}, {state})"
    gate = "pass" if d.passed else "FAIL"
    return (
        f"fit '{res.name}' done in {res.seconds:.1f} s (R-hat {d.max_rhat:.3f}, bulk ESS "
        f"{d.min_ess_bulk:.0f}, {d.divergences} divergences, gate {gate})"
    )


def run_fits(
    jobs: Iterable[FitJob | Sequence[Any]],
    executor: Executor | Any | None = None,
    *,
    max_workers: int | None = None,
    on_error: str = "raise",
    progress: bool = True,
    warm_cache: bool = True,
    store: JobStore | str | os.PathLike[str] | None = None,
) -> dict[str, JobResult]:
    """Run fit jobs in parallel and return their results in job order.

    Parameters
    ----------
    jobs : iterable of FitJob or tuples ``(name, data, spec[, fit_kwargs[, post]])``
        The fits; names must be unique.
    executor : Executor, dask.distributed.Client or None
        Where to run them (see the module docstring); None = a local process pool, created and
        shut down here.  A given executor is not shut down.
    max_workers : int, optional
        Size of the default pool (default: one per job, at most one per CPU).
    on_error : {"raise", "collect"}
        Raise :class:`FitJobError` on the first failing job, or record failures per job.
    progress : bool
        Log one line per finished job (:func:`~obscale_bayes.progress.report_progress`).
    warm_cache : bool
        Compile every distinct model here first (:func:`warm_compile_cache`), so that the draws
        do not depend on which process compiled first.
    store : JobStore, folder path or None
        Where finished jobs are kept, so that a re-run skips them (see the module docstring);
        None = keep nothing.

    Returns
    -------
    dict of str to JobResult
        Keyed by job name, in the order of ``jobs``.
    """
    job_list = [_as_job(j) for j in jobs]
    if on_error not in ON_ERROR:
        raise UsageError(f"run_fits: on_error must be one of {ON_ERROR}, got {on_error!r}")
    names = [j.name for j in job_list]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"run_fits: job names must be unique; '{dup[0]}' is used twice")
    store = as_store(store)
    results: dict[str, JobResult] = {}
    keys = {j.name: job_key(store, j) for j in job_list} if store is not None else {}
    for j in job_list if store is not None else ():
        stored = store.load(keys[j.name])
        if isinstance(stored, JobResult) and stored.name == j.name:
            results[j.name] = replace(stored, from_store=True)
    if results:
        log.info(f"skipped {len(results)} finished jobs from {store.path}")
    todo = [j for j in job_list if j.name not in results]
    if todo:
        _run(todo, executor, max_workers, on_error, progress, warm_cache, store, keys, results)
    return {n: results[n] for n in names}


def _run(
    todo: list[FitJob],
    executor: Executor | Any | None,
    max_workers: int | None,
    on_error: str,
    progress: bool,
    warm_cache: bool,
    store: JobStore | None,
    keys: dict[str, str],
    results: dict[str, JobResult],
) -> None:
    """Run ``todo`` and put their results into ``results`` (and ``store``) as they finish."""
    started = time.monotonic()
    if warm_cache:
        if progress:
            log.info("compiling each model once before dispatching the fits")
        warm_compile_cache(todo)
    own = executor is None
    if own:
        workers = max_workers or default_workers(len(todo))
        cores = max(1, n_cpus() // workers)
        executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
        )
    elif _is_dask_client(executor):
        cores = _dask_threads(executor)
        executor = executor.get_executor(pure=False)
    else:
        cores = 1
    futures: dict[Future, FitJob] = {}
    try:
        futures = {executor.submit(_run_job, j, cores): j for j in todo}
        for i, fut in enumerate(as_completed(futures), start=1):
            job = futures[fut]
            try:
                value, diag, secs = fut.result()
                res = JobResult(job.name, value, diag, secs)
            except Exception as exc:
                msg = f"{type(exc).__name__}: {one_line(exc)}"
                if on_error == "raise":
                    raise FitJobError(f"fit job '{job.name}' failed: {msg}") from exc
                res = JobResult(job.name, None, None, float("nan"), error=msg)
            if store is not None and res.ok:
                store.save(keys[job.name], res, {"kind": "fit", "name": job.name,
                                                 "seconds": f"{res.seconds:.1f}"})  # fmt: skip
            results[job.name] = res
            if progress:
                report_progress(log, i, len(todo), _progress_what(res), started)
    except BaseException as exc:  # a failed job, Ctrl-C: nothing more starts
        for f in futures:
            f.cancel()
        if own and not isinstance(exc, Exception):
            _terminate_workers(executor)
        raise
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
