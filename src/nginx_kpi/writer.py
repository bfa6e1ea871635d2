"""Stores batches on a thread of its own, in order, so that the consumer decodes the next batch meanwhile."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from nginx_kpi import store
from nginx_kpi.store import Batch, OffsetConflict


@dataclass(frozen=True)
class Outcome:
    """What became of a stored batch: committed in `seconds`, or refused for an offset `conflict`."""

    batch: Batch
    seconds: float = 0.0
    conflict: str | None = None


class BatchWriter:
    """At most one batch in flight, on its own connection; `submit` first waits for the one before."""

    def __init__(self, db: store.Database, group: str) -> None:
        self._db = db
        self._group = group
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nginx-kpi-writer")
        self._pending: tuple[Batch, Future[float]] | None = None

    def submit(self, batch: Batch) -> Outcome | None:
        """Start storing `batch`; returns the outcome of the batch that was in flight, if any."""
        previous = self.settle()
        self._pending = (batch, self._pool.submit(self._store, batch))
        return previous

    def settle(self) -> Outcome | None:
        """Wait for the batch in flight; its outcome, or None when there was none.

        A DatabaseError of the writer's thread (PostgreSQL gone for good) is raised here.
        """
        if self._pending is None:
            return None
        batch, future = self._pending
        self._pending = None
        try:
            return Outcome(batch, seconds=future.result())
        except OffsetConflict as exc:
            return Outcome(batch, conflict=str(exc))

    def close(self) -> Outcome | None:
        """Finish the batch in flight and stop the thread."""
        try:
            return self.settle()
        finally:
            self._pool.shutdown()
            self._db.close()

    def _store(self, batch: Batch) -> float:
        started = time.perf_counter()
        self._db.run(lambda conn: store.commit_batch(conn, self._group, batch), retry=store.RETRYABLE)
        return time.perf_counter() - started
