"""File output shared by every layer: atomic writes and JSON-ready records.

Every file the package writes goes through :func:`atomic_write`, so an error or Ctrl-C never
leaves a partial file behind: the content goes to a temporary file in the target's folder,
which is renamed over the target only once it is complete.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from obscale_bayes.errors import UsageError

__all__ = ["atomic_write", "records", "dumps_records"]


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], None] | Callable[[str], None],
    *,
    binary: bool = True,
    to_path: bool = False,
    what: str = "the file",
) -> Path:
    """Write ``path`` atomically (temporary file in the same folder + rename).

    Parameters
    ----------
    path
        Target file; its folder is created if needed.
    write
        Called with an open file object (``binary`` selects ``"wb"`` or text mode), or with
        the temporary file's path when ``to_path`` is true (for writers that open the file
        themselves, e.g. ``DataTree.to_netcdf``).
    what
        Noun used in the one-line error ("cannot write the figure ...").

    Raises
    ------
    UsageError
        The folder or file cannot be written (nothing is left behind).
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise UsageError(f"{p}: cannot write {what} ({e.strerror or e}); check the path") from None
    try:
        if to_path:
            os.close(fd)
            write(tmp)  # type: ignore[arg-type]
        else:
            mode = "wb" if binary else "w"
            kw = {} if binary else {"encoding": "utf-8", "newline": ""}
            with os.fdopen(fd, mode, **kw) as f:
                write(f)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except OSError as e:
        raise UsageError(f"{p}: cannot write {what} ({e.strerror or e}); check the path") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def write_json(path: str | os.PathLike[str], obj: Any, what: str = "the results") -> Path:
    """Write ``obj`` as indented JSON to ``path``, atomically (values JSON does not know, such as
    paths and timestamps, as their text)."""
    text = json.dumps(obj, indent=1, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text), binary=False, what=what)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or (not isinstance(v, str | bytes) and _isna(v)):
        return None
    return v


def _isna(v: Any) -> bool:
    try:
        return bool(v != v)  # NaN, pd.NA, NaT
    except (TypeError, ValueError):
        return False


def records(table: Any) -> list[dict[str, Any]]:
    """A DataFrame (or an iterable of mappings) as JSON-ready dicts: NumPy scalars become
    Python ones, NaN / NA / inf become ``None``."""
    rows: Iterable[Mapping[str, Any]]
    rows = table.to_dict(orient="records") if hasattr(table, "to_dict") else table
    return [{str(k): _plain(v) for k, v in r.items()} for r in rows]


def dumps_records(obj: Any, indent: int = 1) -> str:
    """``json.dumps`` of :func:`records` (DataFrames, also nested in a dict), strict JSON."""
    if isinstance(obj, Mapping):
        obj = {k: records(v) if hasattr(v, "to_dict") else v for k, v in obj.items()}
    elif hasattr(obj, "to_dict"):
        obj = records(obj)
    return json.dumps(obj, indent=indent, allow_nan=False)
