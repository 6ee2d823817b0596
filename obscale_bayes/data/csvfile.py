"""Raw CSV reading for :mod:`obscale_bayes.data.reader`: rows of strings with line numbers.

:class:`CsvTable` reads a file without coercing anything, so that every later problem can be
reported with the file, the CSV line (header = line 1) and the column; :meth:`CsvTable.number`
is the one parser of numeric cells (blank = missing; ``nan``, ``inf``, ``45%`` ... refused).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from obscale_bayes.errors import DataError

__all__ = ["CsvTable", "header_key"]

_NUM = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NOT_NUMBERS = set(
    "nan na n/a #n/a null none inf +inf -inf infinity +infinity -infinity - ?".split()
)


def header_key(name: str) -> str:
    """A header or name as compared: case- and whitespace-insensitive."""
    return " ".join(str(name).strip().lower().split())


class CsvTable:
    """A CSV file read as raw strings, each row with its 1-based line number.

    Parameters
    ----------
    path : str or path-like
        The file (UTF-8, comma-separated, header on line 1; blank lines are skipped).
    what : str
        Noun of the "file not found" message.
    aliases : mapping, optional
        Header key -> canonical column name, so that messages about a canonical column name
        the header as the file spells it.

    Raises
    ------
    DataError
        Missing, empty, non-UTF-8 or malformed file, unnamed or repeated columns, or rows
        whose number of fields differs from the header's.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        what: str = "table",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.name = str(path)
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{self.name}: {what} file not found; check the path")
        if p.stat().st_size == 0:
            raise DataError(f"{self.name}: file is empty (0 bytes); write a header and rows")
        try:
            with p.open(encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f)
                rows = [(reader.line_num, r) for r in reader]
        except UnicodeDecodeError as e:
            raise DataError(f"{self.name}: not UTF-8 text ({e.reason}); save as UTF-8 CSV") from e
        except csv.Error as e:
            raise DataError(f"{self.name}: line {reader.line_num}: malformed CSV ({e})") from e
        except OSError as e:
            raise DataError(f"{self.name}: cannot read the file ({e.strerror}); check it") from e
        rows = [(n, [c.strip() for c in r]) for n, r in rows if any(c.strip() for c in r)]
        if not rows:
            raise DataError(f"{self.name}: file has no header; write a header and rows")
        (_, self.header), self.rows = rows[0], rows[1:]
        if not self.rows:
            raise DataError(f"{self.name}: file has a header but no data rows; add rows")
        for i, h in enumerate(self.header, 1):
            if not h:
                raise DataError(f"{self.name}: line 1: column {i} has no name; name it")
        keys = [header_key(h) for h in self.header]
        aliases = aliases or {}
        # canonical column name -> the header as written, for messages
        self.label = {aliases.get(k, k): h for k, h in zip(keys, self.header, strict=True)}
        for i, k in enumerate(keys):
            if k in keys[:i]:
                raise DataError(
                    f"{self.name}: line 1: column '{self.header[i]}' appears twice; keep one"
                )
        for n, r in self.rows:
            if len(r) != len(self.header):
                raise DataError(
                    f"{self.name}: line {n} has {len(r)} fields but the header has "
                    f"{len(self.header)}; fix the commas on that line"
                )

    def where(self, line: int | None = None, col: str | None = None) -> str:
        out = self.name + (f": line {line}" if line else "")
        return out + (f", column '{self.label.get(col, col)}'" if col else "")

    def error(self, line: int | None, col: str | None, msg: str) -> DataError:
        return DataError(f"{self.where(line, col)}: {msg}")

    def number(self, line: int, col: str, raw: str) -> float | None:
        """Parse a numeric cell: blank -> None, a finite number, or DataError."""
        if raw == "":
            return None
        if raw.lower() in _NOT_NUMBERS:
            raise self.error(
                line,
                col,
                f"value '{raw}' is not a finite number; leave the cell blank for a missing value",
            )
        if not _NUM.fullmatch(raw):
            hint = "; write fractions, e.g. 0.45 for 45%" if raw.endswith("%") else ""
            raise self.error(
                line,
                col,
                f"value '{raw}' is not a number; fix the "
                f"cell or leave it blank for a missing value{hint}",
            )
        v = float(raw)
        if not math.isfinite(v):
            raise self.error(line, col, f"value '{raw}' overflows; fix the cell")
        return v
