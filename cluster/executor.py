"""One function per series, run in this process or on a Dask distributed cluster, results back as they finish.

`open_executor(address)` gives an `Executor`:
- `None` / `in-process` (the default): plain calls in this process, nothing started;
- `local:N`: a `dask.distributed.LocalCluster` of N worker processes (1 thread each) on this machine;
- `tcp://host:8786` (or any address Dask's `Client` takes): an existing cluster, started with
  `dask scheduler` and `dask worker tcp://host:8786` on each node (`--resources GPU=1` on GPU nodes).

`Executor.map_per_series(fn, items, ...)` submits one task per item and yields a `TaskResult` per
item as each finishes, in completion order, so the caller (the client) writes each result to the
registry in its own transaction while the cluster keeps working. A task whose worker dies is
rescheduled by Dask on another worker (up to `distributed.scheduler.allowed-failures` times);
after that it comes back as a failed `TaskResult` naming the cause, never as an exception that
stops the run: the caller records it and a re-run finishes it.

Dask is used as it is, not wrapped into a job system of our own: no queue, no state, no retries
beyond Dask's; this module only turns "where to run" into a Client and futures into results.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

IN_PROCESS = "in-process"
LOCAL_PREFIX = "local:"
GPU = "GPU"  # the worker resource GPU nodes are started with: `dask worker ADDRESS --resources GPU=1`

SCHEDULER_HELP = ("Where per-series work runs: in-process (default), local:N (a Dask LocalCluster of N worker "
                  "processes here) or the address of a running Dask scheduler, e.g. tcp://host:8786.")


@dataclass(frozen=True)
class TaskResult:
    """What came back for one item: its value, or why it failed (`error`, one line)."""

    item: Any
    value: Any = None
    error: str | None = None


class Executor:
    """Runs one function per series here or on a Dask cluster; see the module doc."""

    def __init__(self, client: Any = None, address: str = IN_PROCESS) -> None:
        self.client = client
        self.address = address

    @property
    def distributed(self) -> bool:
        return self.client is not None

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard (task stream, progress, workers), None in-process."""
        return self.client.dashboard_link if self.client is not None else None

    def workers(self) -> dict[str, dict[str, Any]]:
        """Connected workers by address, each with its `resources` and `nthreads`."""
        if self.client is None:
            return {}
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def workers_with(self, resource: str) -> int:
        """How many connected workers declare `resource` (e.g. GPU)."""
        return sum(1 for w in self.workers().values() if (w.get("resources") or {}).get(resource, 0) > 0)

    def describe(self) -> str:
        """One line for the console: where the work runs and with what."""
        if self.client is None:
            return "in-process"
        workers = self.workers()
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        gpus = self.workers_with(GPU)
        return (f"Dask cluster {self.client.scheduler.address}: {len(workers)} workers, {threads} threads"
                + (f", {gpus} with {GPU}" if gpus else "") + f"; dashboard {self.dashboard_link}")

    def share(self, value: Any) -> Any:
        """`value` as a task argument sent to each worker once (a model, say), not once per task."""
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True, hash=False)

    def map_per_series(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        args: tuple[Any, ...] = (),
        label: str = "task",
        key_of: Callable[[Any], str] = str,
        resources: dict[str, float] | None = None,
    ) -> Iterator[TaskResult]:
        """`fn(item, *args)` for every item, as `TaskResult`s in the order they finish.

        In-process an exception raised by `fn` becomes the item's `error` just as on a cluster,
        so callers handle one shape. `resources` (e.g. {"GPU": 1}) restricts tasks to workers
        declaring them; it is ignored in-process.
        """
        if self.client is None:
            for item in items:
                try:
                    yield TaskResult(item, fn(item, *args))
                except Exception as exc:  # noqa: BLE001 - one item's failure is its result, the run goes on
                    yield TaskResult(item, error=describe_failure(exc))
            return
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        pending = {}
        for item in items:
            future = self.client.submit(fn, item, *args, key=f"{label}-{key_of(item)}-{token}",
                                        resources=resources, pure=False)
            pending[future] = item
        for future in as_completed(list(pending)):
            item = pending.pop(future)
            if future.status == "finished":
                yield TaskResult(item, future.result())
            elif future.status == "cancelled":
                yield TaskResult(item, error="cancelled: the cluster lost this task (scheduler restarted or "
                                             "client disconnected); run the command again to finish it")
            else:
                yield TaskResult(item, error=describe_failure(future.exception()))
            future.release()


def describe_failure(exc: BaseException) -> str:
    """One line saying why a task failed and, for a lost worker, what to do."""
    if type(exc).__name__ == "KilledWorker":
        return ("the Dask worker running this series died (out of memory, killed or its node lost) on every try; "
                "nothing was stored for it: run the command again to finish it")
    return f"{type(exc).__name__}: {exc}"


def parse_scheduler(address: str | None) -> tuple[str, int | str | None]:
    """("in-process", None), ("local", N) or ("remote", address); a clear error for anything else."""
    text = (address or IN_PROCESS).strip()
    if text in (IN_PROCESS, "", "none"):
        return IN_PROCESS, None
    if text.startswith(LOCAL_PREFIX):
        count = text[len(LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler {text}: write local:N with N the number of worker processes, e.g. local:4")
        return "local", int(count)
    if "://" in text:
        return "remote", text
    raise ValueError(f"--scheduler {text}: expected in-process, local:N or a scheduler address such as "
                     "tcp://host:8786")


@contextmanager
def open_executor(address: str | None = None, *, threads_per_worker: int = 1) -> Iterator[Executor]:
    """The `Executor` for `--scheduler ADDRESS` (see the module doc); a LocalCluster is closed on exit."""
    kind, target = parse_scheduler(address)
    if kind == IN_PROCESS:
        yield Executor()
        return
    from distributed import Client, LocalCluster

    if kind == "local":
        # Processes, not threads: header parsing and feature extraction hold the GIL.
        cluster = LocalCluster(n_workers=int(target), threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client:
                yield Executor(client, f"local:{target}")
        finally:
            cluster.close()
        return
    try:
        client = Client(str(target), timeout="20s")
    except OSError as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {target} ({exc}): start it with `dask scheduler` "
                           "on that host, or check the address and port (default 8786)") from None
    with client:
        yield Executor(client, str(target))
