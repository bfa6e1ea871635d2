"""PostgreSQL: the schema, and the exactly-once commit of a batch (KPI deltas + offsets, one transaction)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TypeVar

import psycopg

from nginx_kpi.errors import DatabaseError, first_line
from nginx_kpi.kpis import KpiDeltas

log = logging.getLogger(__name__)
T = TypeVar("T")
Connection = psycopg.Connection[tuple[object, ...]]
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
# The server also ends a session that sat too long in a transaction (see connect): a reconnect heals both.
_CONNECTION_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)

OFFSET_BEGINNING = -2  # librdkafka's logical offset for "the start of the partition"
_SCHEMA_LOCK = 0x6E6B7069  # any constant: serialises concurrent `db init`s
SCHEMA_VERSION = "nginx-kpi schema 1"  # also in schema.sql's COMMENT ON TABLE kpis


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record not counted, where it came from, and why."""

    partition: int
    offset: int
    reason: str
    detail: str
    raw: str


@dataclass
class Batch:
    """Everything one transaction writes: deltas, rejected records, and per-partition offsets.

    `offsets[p] = (expected, next)`: the stored next offset must still be `expected` (nobody else
    counted these records meanwhile) and becomes `next`.
    """

    topic: str
    offsets: dict[int, tuple[int, int]]
    deltas: KpiDeltas
    rejected: list[RejectedRecord] = field(default_factory=list)
    records: int = 0


class OffsetConflict(Exception):
    """Another consumer moved a partition's offset: this batch was counted elsewhere."""


class Database:
    """A connection that comes back: an action cut off by a lost connection (so rolled back) runs again."""

    def __init__(self, dsn: str, retry_seconds: float = 60.0) -> None:
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self.conn = connect(dsn)

    def run(self, action: Callable[[Connection], T], retry: tuple[type[Exception], ...] = ()) -> T:
        """`action(connection)`, run again after a lost connection or one of the `retry` errors."""
        deadline = time.monotonic() + self.retry_seconds
        while True:
            try:
                return action(self.conn)
            except retry as exc:
                log.info("retrying transaction: %s", first_line(exc))
            except _CONNECTION_LOST as exc:
                if time.monotonic() > deadline:
                    raise DatabaseError(f"lost PostgreSQL, could not reconnect: {first_line(exc)}") from exc
                log.warning("PostgreSQL connection lost (%s); reconnecting", first_line(exc))
                time.sleep(1.0)
                self._reconnect()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _reconnect(self) -> None:
        try:
            self.conn.close()
            self.conn = connect(self.dsn)
        except DatabaseError as exc:
            log.warning("%s", exc)


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection, turning failures into one-line errors."""
    try:
        conn = psycopg.connect(dsn, connect_timeout=10, application_name="nginx-kpi", autocommit=True)
        # A consumer frozen mid-transaction (stopped, swapped out, a zombie) would hold its row locks
        # and stall every other consumer: the server ends such a transaction, and its batch with it.
        conn.execute("SET idle_in_transaction_session_timeout = '15s'")
        conn.autocommit = False
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL ({_redacted(dsn)}): {first_line(exc)}") from exc
    return conn


def init_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the tables and views unless the current schema version is already there.

    The version check lets a consumer whose role may only read and write the tables start on a
    database that an administrator initialised (deploy/postgres/).
    """
    sql = resources.files("nginx_kpi").joinpath("schema.sql").read_text(encoding="utf-8")
    try:
        with conn.transaction():
            if _schema_version(conn) == SCHEMA_VERSION:
                return
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(sql.encode())
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot create the schema: {first_line(exc)}") from exc


def _schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    row = conn.execute("SELECT obj_description(to_regclass('kpis'), 'pg_class')").fetchone()
    return None if row is None else row[0]  # type: ignore[return-value]


def reset(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Delete all counts, members, rejected records and offsets, together."""
    with conn.transaction():
        conn.execute("TRUNCATE kpis, kpi_distinct_members, rejected_records, consumer_offsets")


def stored_offsets(
    conn: psycopg.Connection[tuple[object, ...]], group: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The next offset to read for each partition, registering unseen partitions at the beginning."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset)
               SELECT %s, %s, p, %s FROM unnest(%s::int[]) AS p
               ON CONFLICT DO NOTHING""",
            (group, topic, OFFSET_BEGINNING, partitions),
        )
        rows = conn.execute(
            """SELECT kafka_partition, next_offset FROM consumer_offsets
               WHERE consumer_group = %s AND topic = %s AND kafka_partition = ANY(%s)""",
            (group, topic, partitions),
        ).fetchall()
    return {int(p): int(o) for p, o in rows}  # type: ignore[call-overload]


def commit_batch(conn: psycopg.Connection[tuple[object, ...]], group: str, batch: Batch) -> None:
    """Store a batch exactly once: claim its offsets, then add its deltas, all or nothing.

    Raises OffsetConflict (and writes nothing) when a partition's offset is no longer the expected one.
    """
    # Binary parameters: large text arrays are much cheaper to send than as array literals.
    with conn.transaction(), conn.cursor(binary=True) as cur:
        for partition, (expected, next_offset) in sorted(batch.offsets.items()):
            cur.execute(
                """UPDATE consumer_offsets SET next_offset = %s, updated_at = now()
                   WHERE consumer_group = %s AND topic = %s AND kafka_partition = %s AND next_offset = %s""",
                (next_offset, group, batch.topic, partition, expected),
            )
            if cur.rowcount != 1:
                raise OffsetConflict(f"{batch.topic}[{partition}] is no longer at offset {expected}")
        counts = batch.deltas.counts + _new_distinct_counts(cur, batch.deltas.members)
        _add_counts(cur, counts)
        _insert_rejected(cur, batch.topic, batch.rejected)


def _new_distinct_counts(
    cur: psycopg.Cursor[tuple[object, ...]], members: set[tuple[str, str, str]]
) -> Counter[tuple[str, str]]:
    if not members:
        return Counter()
    keys, values, names = zip(*sorted(members), strict=True)
    # Sorted inserts take row locks in one order, so concurrent consumers cannot deadlock here.
    cur.execute(
        """WITH added AS (
               INSERT INTO kpi_distinct_members (kpi_key, kpi_value, member)
               SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ORDER BY 1, 2, 3
               ON CONFLICT DO NOTHING
               RETURNING kpi_key, kpi_value)
           SELECT kpi_key, kpi_value, count(*) FROM added GROUP BY 1, 2""",
        (list(keys), list(values), list(names)),
    )
    return Counter({(str(k), str(v)): int(n) for k, v, n in cur.fetchall()})  # type: ignore[call-overload]


def _add_counts(cur: psycopg.Cursor[tuple[object, ...]], counts: Counter[tuple[str, str]]) -> None:
    if not counts:
        return
    rows = sorted(counts.items())
    cur.execute(
        """INSERT INTO kpis (kpi_key, kpi_value, vcount)
           SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) ORDER BY 1, 2
           ON CONFLICT (kpi_key, kpi_value)
           DO UPDATE SET vcount = kpis.vcount + EXCLUDED.vcount, updated_at = now()""",
        ([k for (k, _), _ in rows], [v for (_, v), _ in rows], [n for _, n in rows]),
    )


def _insert_rejected(
    cur: psycopg.Cursor[tuple[object, ...]], topic: str, rejected: list[RejectedRecord]
) -> None:
    if not rejected:
        return
    cur.executemany(
        """INSERT INTO rejected_records (topic, kafka_partition, kafka_offset, reason, detail, raw)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        [(topic, r.partition, r.offset, r.reason, r.detail, r.raw) for r in rejected],
    )


def _redacted(dsn: str) -> str:
    # Never print a password that the DSN may carry.
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "invalid DSN"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())
