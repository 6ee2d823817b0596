"""Finished jobs on disk, so that a killed sweep or backtest, re-run the same way, resumes.

A :class:`JobStore` is a folder with one file per finished job, ``<key>.pkl`` (the pickled
result, with its manifest) and ``<key>.json`` (the manifest alone, for people: kind, name, when,
package version).  Both are written through :func:`obscale_bayes.io.atomic_write`, the pickle
last, so a Ctrl-C or a kill never leaves a partial result: a job either has its complete file or
none and is run again.

The *key* (:meth:`JobStore.key`) is a SHA-256 of everything a result depends on, canonicalised
so that it is the same in every process and on every run: the job's kind and name, its inputs
(data by :meth:`~obscale_bayes.data.tables.BenchmarkData.fingerprint`, specs by their JSON,
fit keywords with the seed, the post-processing function and its arguments, DataFrames by their
contents) and the *environment* (:func:`environment`): the package version, a hash of the
package's own files (code, shipped tables and specs), and the versions of Python, NumPy, pandas, PyTensor, PyMC, nutpie and
ArviZ.  A job whose inputs or code changed therefore gets a new key and is run again; old files
stay until the folder is deleted (safe at any time: it only holds results that can be
recomputed).  Several runs may share one store; equal keys mean equal results.

:func:`ctrl_c_stops` guards fits run in the calling process: nutpie catches
``KeyboardInterrupt`` and returns the draws it has so far, which would make a Ctrl-C into a short
fit kept as finished; inside the guard Ctrl-C stops the fit and comes out as
``KeyboardInterrupt``, so nothing of the interrupted fit is kept.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import platform
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from obscale_bayes.errors import UsageError
from obscale_bayes.io import atomic_write
from obscale_bayes.progress import get_logger

__all__ = ["STORE_FORMAT", "JobStore", "as_store", "content_hash", "ctrl_c_stops", "environment"]

log = get_logger(__name__)

#: Version of the file layout; a store written by another layout is ignored (jobs re-run).
STORE_FORMAT = 1
#: Libraries whose versions enter every key (they change the draws).
_LIBRARIES = ("numpy", "pandas", "scipy", "pytensor", "pymc", "nutpie", "arviz")


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """What every key depends on besides the job: versions and a hash of the package source."""
    from obscale_bayes import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = [p for p in root.rglob("*") if p.suffix in (".py", ".csv", ".toml") and p.is_file()]
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    env = {"obscale_bayes": __version__, "source": h.hexdigest(),
           "python": platform.python_version()}  # fmt: skip
    for lib in _LIBRARIES:
        try:
            env[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            env[lib] = "absent"
    return env


def _feed(h: Any, obj: Any) -> None:
    """Feed a canonical serialisation of ``obj`` into the hash ``h`` (the same in every process:
    no ``hash()``, no ``id()``, no memory addresses)."""
    from obscale_bayes.data.tables import BenchmarkData
    from obscale_bayes.spec.spec import ModelSpec

    def tag(t: str) -> None:
        h.update(b"<" + t.encode() + b">")

    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        tag(type(obj).__name__)
        h.update(repr(obj).encode())
    elif isinstance(obj, BenchmarkData):
        tag("BenchmarkData")
        h.update(obj.fingerprint().encode())
    elif isinstance(obj, ModelSpec):
        tag("ModelSpec")
        h.update(obj.to_json().encode())
    elif isinstance(obj, pd.DataFrame | pd.Series):
        tag(type(obj).__name__)
        frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
        _feed(h, [str(obj.__class__), list(map(str, frame.columns)),
                  list(map(str, frame.dtypes)), list(map(str, obj.index.names))])  # fmt: skip
        try:
            h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists ...): by their pickle
            h.update(pickle.dumps(obj, protocol=5))
    elif isinstance(obj, pd.Index):
        _feed(h, pd.Series(obj))
    elif isinstance(obj, np.ndarray):
        tag(f"ndarray{obj.dtype.str}{obj.shape}")
        if obj.dtype.hasobject:
            _feed(h, obj.tolist())
        else:
            h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, Mapping):
        tag(f"mapping{len(obj)}")
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, list | tuple):
        tag(f"{type(obj).__name__}{len(obj)}")  # the length: [[1], 2] is not [[1, 2]]
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, set | frozenset):
        tag(f"set{len(obj)}")
        for d in sorted(content_hash(v) for v in obj):
            h.update(d.encode())
    elif isinstance(obj, Path):
        tag("path")
        h.update(str(obj).encode())
    elif isinstance(obj, functools.partial):
        tag("partial")
        _feed(h, [obj.func, obj.args, obj.keywords])
    elif callable(obj) and hasattr(obj, "__qualname__"):
        tag("callable")
        h.update(f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        code = getattr(obj, "__code__", None)
        if code is not None:  # a user's function: its code and closure too
            h.update(code.co_code)
            _feed(h, [c for c in code.co_consts if isinstance(c, int | float | str | bytes)])
            for cell in obj.__closure__ or ():
                try:
                    v = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                # a function in the closure by its name only (it may be this one: recursion)
                name = getattr(v, "__qualname__", type(v).__qualname__)
                _feed(h, f"{getattr(v, '__module__', '')}.{name}" if callable(v) else v)
    elif dataclasses.is_dataclass(obj):
        tag(f"{type(obj).__module__}.{type(obj).__qualname__}")
        for f in dataclasses.fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
    else:  # anything else by its pickle (deterministic for plain objects)
        tag(f"{type(obj).__module__}.{type(obj).__qualname__}")
        h.update(pickle.dumps(obj, protocol=5))


def content_hash(*parts: Any) -> str:
    """SHA-256 (hex) of the canonical serialisation of ``parts``: equal contents, equal hash."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


class JobStore:
    """A folder of finished job results, keyed by everything they depend on.

    Parameters
    ----------
    path : str or os.PathLike
        The folder (created if missing).

    Raises
    ------
    UsageError
        ``path`` is a file, or the folder cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if str(path).strip() == "":
            raise UsageError("store: empty folder name; give a path")
        if p.exists() and not p.is_dir():
            raise UsageError(f"store: {p} is a file; give a folder for the finished jobs")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(
                f"store: cannot create {p} ({e.strerror or e}); check the path"
            ) from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"store: cannot write in {p}: no write permission")
        self.path = p

    def __repr__(self) -> str:
        return f"JobStore({str(self.path)!r})"

    def __len__(self) -> int:
        """Number of finished jobs kept."""
        return sum(1 for _ in self.path.glob("*.pkl"))

    def __bool__(self) -> bool:  # a store is a store, empty or not
        return True

    def key(self, kind: str, name: str, *parts: Any) -> str:
        """The key of job ``name`` of ``kind`` with inputs ``parts`` (plus :func:`environment`)."""
        return content_hash(STORE_FORMAT, kind, name, parts, environment())

    def file(self, key: str) -> Path:
        """The result file of ``key``."""
        return self.path / f"{key}.pkl"

    def load(self, key: str) -> Any | None:
        """The stored result of ``key``, or None (not finished, or unreadable: run it again)."""
        f = self.file(key)
        if not f.is_file():
            return None
        try:
            with f.open("rb") as fh:
                rec = pickle.load(fh)
        except Exception as e:  # a foreign or damaged file is not a result: the job re-runs
            log.warning(f"ignoring unreadable job file {f} ({type(e).__name__}); running it again")
            return None
        if not isinstance(rec, dict) or rec.get("format") != STORE_FORMAT or rec.get("key") != key:
            log.warning(f"ignoring job file {f}: not written by this store; running it again")
            return None
        return rec["result"]

    def save(self, key: str, result: Any, about: Mapping[str, Any]) -> Path:
        """Store ``result`` under ``key`` atomically; ``about`` (kind, name ...) goes to the
        manifest.  Returns the result file."""
        manifest = {"key": key, **{k: str(v) for k, v in about.items()},
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "environment": environment()}  # fmt: skip
        rec = {"format": STORE_FORMAT, "key": key, "manifest": manifest, "result": result}
        blob = pickle.dumps(rec, protocol=5)  # before any file is touched: a bad value fails here
        atomic_write(self.path / f"{key}.json",
                     lambda fh: fh.write(json.dumps(manifest, indent=1) + "\n"), binary=False,
                     what="the job manifest")  # fmt: skip
        return atomic_write(self.file(key), lambda fh: fh.write(blob), what="the job result")


def as_store(store: JobStore | str | os.PathLike[str] | None) -> JobStore | None:
    """``store`` as a :class:`JobStore` (a folder path is opened; None stays None)."""
    if store is None or isinstance(store, JobStore):
        return store
    if not isinstance(store, str | os.PathLike):
        raise UsageError(f"store: expected a folder path or a JobStore, not {type(store).__name__}")
    return JobStore(store)


class _Stop(BaseException):
    """Ctrl-C inside :func:`ctrl_c_stops`: not a ``KeyboardInterrupt``, so no library takes it
    for a request to return early."""


@contextmanager
def ctrl_c_stops() -> Iterator[None]:
    """Within: Ctrl-C (SIGINT) stops whatever runs, even a library that catches
    ``KeyboardInterrupt`` (nutpie returns its partial draws), and leaves as ``KeyboardInterrupt``.

    Outside the main thread, or where SIGINT is ignored, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    except _Stop:
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, previous)
