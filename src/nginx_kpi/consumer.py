"""The KPI consumer loop: Kafka batch -> KPI deltas -> one PostgreSQL transaction with the offsets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from nginx_kpi import kafka, store
from nginx_kpi.errors import BrokerError, DatabaseError
from nginx_kpi.kpis import kpi_deltas_for
from nginx_kpi.metrics import CONSUMER_METRICS as METRICS
from nginx_kpi.record import decode_batch
from nginx_kpi.store import Batch, OffsetConflict, RejectedRecord

log = logging.getLogger(__name__)

T = TypeVar("T")
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


@dataclass(frozen=True)
class ConsumerOptions:
    """What `nginx-kpi consume` was asked to do."""

    brokers: str
    topic: str
    group: str
    dsn: str
    batch_size: int = 20_000
    poll_timeout: float = 0.5
    until_idle: bool = False
    db_retry_seconds: float = 60.0
    log_every: float = 10.0


@dataclass
class RunStats:
    """Totals of one run."""

    records: int = 0
    rejected: int = 0
    batches: int = 0
    conflicts: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        """Records per second since the start."""
        return self.records / max(time.monotonic() - self.started, 1e-9)


class KpiConsumer:
    """A consumer-group member that counts each record exactly once."""

    def __init__(self, options: ConsumerOptions) -> None:
        self.options = options
        self.stats = RunStats()
        self.stopping = False
        # Next offset per assigned partition, as stored in PostgreSQL: the source of truth.
        self.positions: dict[int, int] = {}
        self.at_eof: set[int] = set()
        self.conn = store.connect(options.dsn)
        store.init_schema(self.conn)
        if not kafka.partitions_of(options.brokers, options.topic):
            raise BrokerError(
                f"topic {options.topic!r} does not exist on {options.brokers}; "
                "create it with `nginx-kpi topic create` (or by shipping to it)"
            )
        self.consumer: Consumer = kafka.new_consumer(options.brokers, options.group)

    def run(self) -> RunStats:
        """Consume until stopped (SIGINT/SIGTERM) or, with until_idle, until the topic is drained."""
        self.consumer.subscribe([self.options.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_log = time.monotonic()
        try:
            while not self.stopping:
                messages = self.consumer.consume(self.options.batch_size, self.options.poll_timeout)
                batch = self._batch_of(messages)
                if batch.offsets:
                    self._commit(batch)
                elif self.options.until_idle and self.at_eof >= self.positions.keys() and self._drained():
                    break
                if time.monotonic() - last_log >= self.options.log_every:
                    self._log_progress()
                    last_log = time.monotonic()
        finally:
            self.consumer.close()
            self.conn.close()
        self._log_progress()
        return self.stats

    def stop(self, *_: object) -> None:
        """Finish the current batch, then leave."""
        self.stopping = True

    def _drained(self) -> bool:
        """Every partition of the topic, ours or not, is counted up to its end (as stored in PostgreSQL).

        Judged on the whole topic so that a member with no partitions (or one waiting for a dead
        member's session to expire) does not leave before the others' records are counted.
        """
        partitions = kafka.partition_ids(self.options.brokers, self.options.topic)
        stored = self._with_db(
            lambda: store.stored_offsets(self.conn, self.options.group, self.options.topic, partitions)
        )
        for partition in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.options.topic, partition), 10.0
            )
            if max(stored[partition], low) < high:
                return False
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._with_db(
            lambda: store.stored_offsets(
                self.conn, self.options.group, self.options.topic, [tp.partition for tp in partitions]
            )
        )
        for tp in partitions:
            tp.offset = stored[tp.partition]
            self.positions[tp.partition] = tp.offset
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions))
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self.at_eof.discard(tp.partition)
        consumer.unassign()

    def _batch_of(self, messages: list[Message]) -> Batch:
        kept = [m for m in messages if m.error() is None]
        if len(kept) != len(messages):
            for message in messages:
                self._on_message_error(message)
        if any(m.partition() not in self.positions for m in kept):
            kept = [m for m in kept if m.partition() in self.positions]  # revoked in flight: not ours
        columns, rejections = decode_batch([m.value() for m in kept])
        rejected = [
            RejectedRecord(kept[i].partition(), kept[i].offset(), r.reason, r.detail, r.raw)  # type: ignore[arg-type]
            for i, r in rejections
        ]
        offsets = {p: (self.positions[p], o + 1) for p, o in _last_offsets(kept).items()}
        self.at_eof.difference_update(offsets)
        deltas = kpi_deltas_for(columns, (r.reason for r in rejected))
        return Batch(self.options.topic, offsets, deltas, rejected, records=len(kept))

    def _on_message_error(self, message: Message) -> None:
        err: KafkaError | None = message.error()
        if err is None:
            return
        if err.code() == KafkaError._PARTITION_EOF:
            self.at_eof.add(message.partition())  # type: ignore[arg-type]
        elif err.fatal():
            raise BrokerError(f"kafka: {err.str()}")
        else:
            log.warning("kafka: %s", err.str())

    def _commit(self, batch: Batch) -> None:
        started = time.perf_counter()
        try:
            self._with_db(lambda: store.commit_batch(self.conn, self.options.group, batch), retry=_RETRYABLE)
        except OffsetConflict as exc:
            # Another member counted these records (we were a zombie after a rebalance): drop ours.
            self.stats.conflicts += 1
            log.warning("offset conflict, re-reading stored offsets: %s", exc)
            self._resync(list(batch.offsets))
            return
        for partition, (_, next_offset) in batch.offsets.items():
            self.positions[partition] = next_offset
        records = batch.records
        self.stats.records += records
        self.stats.rejected += len(batch.rejected)
        self.stats.batches += 1
        METRICS.observe_batch(records, len(batch.rejected), time.perf_counter() - started)

    def _resync(self, partitions: list[int]) -> None:
        mine = [p for p in partitions if p in self.positions]
        stored = self._with_db(
            lambda: store.stored_offsets(self.conn, self.options.group, self.options.topic, mine)
        )
        for partition, offset in stored.items():
            self.positions[partition] = offset
            self.consumer.seek(TopicPartition(self.options.topic, partition, offset))

    def _with_db(self, action: Callable[[], T], retry: tuple[type[Exception], ...] = ()) -> T:
        """Run `action`, reconnecting after a lost connection (the transaction was rolled back)."""
        deadline = time.monotonic() + self.options.db_retry_seconds
        while True:
            try:
                return action()
            except retry as exc:
                log.info("retrying transaction: %s", exc)
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DatabaseError(f"lost PostgreSQL and could not reconnect: {exc}") from exc
                log.warning("PostgreSQL connection lost (%s); reconnecting", str(exc).strip())
                time.sleep(1.0)
                self._reconnect()

    def _reconnect(self) -> None:
        try:
            self.conn.close()
            self.conn = store.connect(self.options.dsn)
        except DatabaseError as exc:
            log.warning("%s", exc)

    def _log_progress(self) -> None:
        s = self.stats
        log.info(
            "%d records in %d batches (%.0f records/s), %d rejected, %d conflicts",
            s.records,
            s.batches,
            s.rate(),
            s.rejected,
            s.conflicts,
        )


def _last_offsets(messages: list[Message]) -> dict[int, int]:
    """The offset of the last message of each partition in a batch (messages are in offset order)."""
    last: dict[int, int] = {}
    for message in reversed(messages):
        partition: int = message.partition()  # type: ignore[assignment]
        if partition not in last:
            last[partition] = message.offset()  # type: ignore[assignment]
    return last
