"""A table as plain Python rows: what the registry's command-line reads return, without importing pandas.

`ctstudy registry progress`, `registry missing` and `users list` must start in under a second, and
importing pandas (with numpy and pyarrow) alone took a third of that. Their reads return `Rows`: the
column names and a list of tuples, exactly what SQLAlchemy hands back. The dashboard, the exports
and the tests that want a DataFrame call `to_frame()`, which imports pandas only then. This is the
one small container the CLI needs, so it is written here rather than taken from a library (a
DataFrame library is what it avoids; the stdlib has no named-column table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Rows:
    """Named columns and rows of values (each row a tuple in column order)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        width = len(self.columns)
        for row in self.rows:
            if len(row) != width:
                raise ValueError(f"a row has {len(row)} values for {width} columns {self.columns}: {row!r}")

    @classmethod
    def from_records(cls, columns: Sequence[str], records: Iterable[dict[str, Any]]) -> Rows:
        """Rows from dicts; a key missing from a record is None."""
        return cls(tuple(columns), [tuple(r.get(c) for c in columns) for r in records])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        """The values of one column."""
        try:
            i = self.columns.index(column)
        except ValueError:
            raise KeyError(f"no column {column!r} (columns: {', '.join(self.columns)})") from None
        return [row[i] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def select(self, columns: Sequence[str]) -> Rows:
        """These columns only, in this order."""
        at = [self.columns.index(c) for c in columns]
        return Rows(tuple(columns), [tuple(row[i] for i in at) for row in self.rows])

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))
