"""Which centers' files have all been read, so that ingest can store their series while reading goes on.

Ingest groups files by (center code, SeriesInstanceUID) and stores the groups in sorted order. A series
never spans two centers, so once every file of a center has been read its groups are complete: storing
them while the other centers' files are still read gives the same series as storing everything after
reading, and storing centers in sorted code order, each one's series in sorted order, keeps the order of
storing after reading (hence the same rows, in the same order).

`CentersRead` is that bookkeeping: told the center of each file read, it says which centers are ready,
in sorted order, each once. A center that may still gain files (one of its files is a zip archive, whose
members are read after the folder) is held: neither it nor any center after it in sorted order is ready
before reading ends. `stop` holds every center not yet said ready (one said ready that ingest cannot store
while reading keeps the rest, which come after it, for after reading too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class CentersRead:
    def __init__(self, codes: Iterable[str]) -> None:
        """`codes`: the center code of every file to be read (one entry a file)."""
        self.unread = Counter(codes)
        self.order = sorted(self.unread)
        self.held: set[str] = set()
        self.stopped = False
        self.next = 0  # index in `order` of the first center not yet said ready

    def read(self, code: str) -> list[str]:
        """One more file of `code` read: the centers that became ready (sorted, each said once)."""
        self.unread[code] -= 1
        if self.unread[code] < 0:
            raise ValueError(f"more files read for center {code!r} than were announced")
        return self._ready()

    def hold(self, code: str) -> None:
        """Keep `code` (and every center after it in sorted order) from being ready before reading ends."""
        self.held.add(code)

    def stop(self) -> None:
        """No center is ready any more before reading ends."""
        self.stopped = True

    def _ready(self) -> list[str]:
        ready: list[str] = []
        while not self.stopped and self.next < len(self.order):
            code = self.order[self.next]
            if self.unread[code] or code in self.held:
                break
            ready.append(code)
            self.next += 1
        return ready
