"""The KPI consumer loop: Kafka batch -> KPI deltas -> one PostgreSQL transaction with the offsets."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from nginx_kpi import kafka, store
from nginx_kpi.errors import BrokerError
from nginx_kpi.kpis import kpi_deltas_for
from nginx_kpi.metrics import CONSUMER_METRICS as METRICS
from nginx_kpi.record import decode_batch
from nginx_kpi.store import Batch, RejectedRecord
from nginx_kpi.writer import BatchWriter, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerOptions:
    """What `nginx-kpi consume` was asked to do."""

    brokers: str
    topic: str
    group: str
    dsn: str
    batch_size: int = 10_000
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
        # Next offset per assigned partition: what PostgreSQL holds once the batch in flight is stored.
        self.positions: dict[int, int] = {}
        self.at_eof: set[int] = set()
        # Two connections: offsets are read here while the writer's thread commits the previous batch.
        self.db = store.Database(options.dsn, options.db_retry_seconds)
        store.init_schema(self.db.conn)
        self.writer = BatchWriter(store.Database(options.dsn, options.db_retry_seconds), options.group)
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
                # Messages pin librdkafka's fetched buffers: none are kept once their batch is built.
                batch = self._batch_of(self._next_messages())
                if batch.offsets:
                    self._submit(batch)
                else:
                    self._settle()
                    if self.options.until_idle and self.at_eof >= self.positions.keys() and self._drained():
                        break
                if time.monotonic() - last_log >= self.options.log_every:
                    self._log_progress()
                    last_log = time.monotonic()
            self._settle()
        finally:
            self.writer.close()
            self.consumer.close()
            self.db.close()
        self._log_progress()
        return self.stats

    def _next_messages(self) -> list[Message]:
        return self.consumer.consume(self.options.batch_size, self.options.poll_timeout)

    def stop(self) -> None:
        """Finish the current batch, then leave."""
        self.stopping = True

    def _drained(self) -> bool:
        """Every partition of the topic, ours or not, is counted up to its end (as stored in PostgreSQL).

        Judged on the whole topic so that a member with no partitions (or one waiting for a dead
        member's session to expire) does not leave before the others' records are counted.
        """
        metadata = self.consumer.list_topics(self.options.topic, timeout=10.0).topics[self.options.topic]
        partitions = sorted(metadata.partitions)
        stored = self._stored_offsets(partitions)
        for partition in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.options.topic, partition), 10.0
            )
            if max(stored[partition], low) < high:
                return False
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()
        stored = self._stored_offsets([tp.partition for tp in partitions])
        for tp in partitions:
            tp.offset = stored[tp.partition]
            self.positions[tp.partition] = tp.offset
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions))
        if self.stats.records == 0:
            self.stats.started = time.monotonic()  # the rate leaves out joining the group
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()  # the new owner then starts where our last batch ended
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self.at_eof.discard(tp.partition)
        consumer.unassign()

    def _batch_of(self, messages: list[Message]) -> Batch:
        kept = [m for m in messages if m.error() is None]
        if any(m.partition() not in self.positions for m in kept):
            kept = [m for m in kept if m.partition() in self.positions]  # revoked in flight: not ours
        columns, rejections = decode_batch([m.value() for m in kept])
        rejected = [
            RejectedRecord(kept[i].partition(), kept[i].offset(), r.reason, r.detail, r.raw)  # type: ignore[arg-type]
            for i, r in rejections
        ]
        offsets = {p: (self.positions[p], o + 1) for p, o in _last_offsets(kept).items()}
        self.at_eof.difference_update(offsets)
        if len(kept) != len(messages):  # after the discard above: an end-of-partition follows its records
            for message in messages:
                self._on_message_error(message)
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

    def _submit(self, batch: Batch) -> None:
        """Hand a batch to the writer; the next batch's expected offsets are this one's ends."""
        outcome = self.writer.submit(batch)
        for partition, (_, next_offset) in batch.offsets.items():
            self.positions[partition] = next_offset
        self._account(outcome)  # after: a conflict there re-reads the positions from the database

    def _settle(self) -> None:
        self._account(self.writer.settle())

    def _account(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        batch = outcome.batch
        if outcome.conflict is not None:
            # Another member counted these records (we were a zombie after a rebalance): drop ours.
            self.stats.conflicts += 1
            log.warning("offset conflict, re-reading stored offsets: %s", outcome.conflict)
            self._resync(list(batch.offsets))
            return
        self.stats.records += batch.records
        self.stats.rejected += len(batch.rejected)
        self.stats.batches += 1
        METRICS.observe_batch(batch.records, len(batch.rejected), outcome.seconds)

    def _resync(self, partitions: list[int]) -> None:
        self._account(self.writer.settle())  # a batch still in flight was built on the refused one
        mine = [p for p in partitions if p in self.positions]
        for partition, offset in self._stored_offsets(mine).items():
            self.positions[partition] = offset
            self.consumer.seek(TopicPartition(self.options.topic, partition, offset))

    def _stored_offsets(self, partitions: list[int]) -> dict[int, int]:
        return self.db.run(
            lambda conn: store.stored_offsets(conn, self.options.group, self.options.topic, partitions)
        )

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
