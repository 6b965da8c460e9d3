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

The client never waits forever: a result lost with its worker after it finished is waited for
again (Dask recomputes it), and when no connected worker can run the remaining tasks (none at
all, or none with the resource they need, e.g. the only GPU worker died) for `stall_timeout_s`,
they are cancelled and come back failed, saying so.

Dask is used as it is, not wrapped into a job system of our own: no queue, no state, no retries
beyond Dask's; this module only turns "where to run" into a Client and futures into results.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

IN_PROCESS = "in-process"
LOCAL_PREFIX = "local:"
GPU = "GPU"  # the worker resource GPU nodes are started with: `dask worker ADDRESS --resources GPU=1`

STALL_TIMEOUT_S = 600.0  # how long tasks may wait with no worker able to run them before they are given up
POLL_S = 2.0

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

    def __init__(self, client: Any = None, address: str = IN_PROCESS, *,
                 stall_timeout_s: float = STALL_TIMEOUT_S) -> None:
        self.client = client
        self.address = address
        self.stall_timeout_s = stall_timeout_s

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
        from distributed import CancelledError, as_completed

        token = uuid.uuid4().hex[:8]
        pending = {}
        for item in items:
            future = self.client.submit(fn, item, *args, key=f"{label}-{key_of(item)}-{token}",
                                        resources=resources, pure=False)
            pending[future] = item
        given_up: dict[str, str] = {}  # key -> why the watchdog cancelled it
        lock = threading.Lock()
        watchdog = _StallWatchdog(self, pending, lock, resources, given_up)
        watchdog.start()
        try:
            tracked = as_completed(list(pending))
            for future in tracked:
                if future.status in ("lost", "pending"):
                    # It finished, then its result was lost with its worker: Dask recomputes it; wait for it again.
                    tracked.add(future)
                    continue
                item = pending[future]
                try:
                    if future.status == "finished":
                        result = TaskResult(item, future.result())
                    elif future.status == "error":
                        exc = future.exception()
                        if exc is None:  # lost and recomputed between the two looks: wait for it again
                            tracked.add(future)
                            continue
                        result = TaskResult(item, error=describe_failure(exc))
                    else:
                        raise CancelledError(future.key)
                except CancelledError:
                    result = TaskResult(item, error=given_up.get(future.key) or (
                        "cancelled: the cluster lost this task (scheduler restarted or client disconnected); "
                        "run the command again to finish it"))
                with lock:
                    del pending[future]
                future.release()
                yield result
        finally:
            watchdog.stop()
            if pending:  # the caller stopped early (an error, Ctrl-C): nothing is left running for nobody
                self.client.cancel(list(pending))


class _StallWatchdog(threading.Thread):
    """Cancels the unfinished tasks once no connected worker could run them for `stall_timeout_s` seconds
    (Dask would keep them waiting for such a worker forever), recording why in `given_up`."""

    def __init__(self, executor: Executor, pending: dict, lock: threading.Lock, resources: dict[str, float] | None,
                 given_up: dict[str, str]) -> None:
        super().__init__(name="ctstudy-stall-watchdog", daemon=True)
        self.executor, self.pending, self.lock = executor, pending, lock
        self.resources, self.given_up = resources, given_up
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def able_workers(self) -> int:
        workers = self.executor.workers().values()
        need = self.resources or {}
        return sum(1 for w in workers if all((w.get("resources") or {}).get(r, 0) >= n for r, n in need.items()))

    def run(self) -> None:
        limit = self.executor.stall_timeout_s
        since = None
        while not self.stopped.wait(min(POLL_S, limit)):
            try:
                able = self.able_workers()
            except Exception:  # noqa: BLE001 - the client is closing; the main loop will see it
                return
            if able:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since < limit:
                continue
            need = ", ".join(f"{r}={n:g}" for r, n in (self.resources or {}).items())
            why = (f"no Dask worker{f' with {need}' if need else ''} was connected to run this series for "
                   f"{limit:.0f} s, so it was given up: start one (`dask worker ADDRESS"
                   f"{f' --resources {need}' if need else ''}`) and run the command again")
            with self.lock:
                waiting = [f for f in self.pending if f.status not in ("finished", "error", "cancelled")]
            for future in waiting:
                self.given_up[future.key] = why
            if waiting:
                self.executor.client.cancel(waiting, reason="no worker able to run it", msg=why)
            return


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
