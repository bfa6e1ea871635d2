"""The exactly-once commit on the real PostgreSQL: offsets are a compare-and-set, deltas all or nothing."""

from __future__ import annotations

import threading

import psycopg
import pytest

from nginx_kpi import store
from nginx_kpi.kpis import kpi_deltas_for
from nginx_kpi.record import Columns, Request
from nginx_kpi.store import Batch, OffsetConflict
from tests.integration.conftest import Pipeline

DAY = 1796342400  # 2026-12-04 00:00:00 UTC


def _batch(topic: str, partition: int, expected: int, next_offset: int, remote: str = "10.0.0.1") -> Batch:
    requests = [
        Request(DAY + i, remote, "GET", "/", "200", 10) for i in range(next_offset - max(expected, 0))
    ]
    return Batch(
        topic,
        {partition: (expected, next_offset)},
        kpi_deltas_for(Columns.of(requests)),
        records=len(requests),
    )


def test_a_batch_counted_elsewhere_is_refused_whole(pipeline: Pipeline) -> None:
    with store.connect(pipeline.dsn) as conn:
        store.init_schema(conn)
        assert store.stored_offsets(conn, "g", pipeline.topic, [0]) == {0: store.OFFSET_BEGINNING}
        store.commit_batch(conn, "g", _batch(pipeline.topic, 0, -2, 5))
        before = pipeline.kpis()
        with pytest.raises(OffsetConflict):
            store.commit_batch(conn, "g", _batch(pipeline.topic, 0, -2, 5, remote="10.0.0.2"))
        assert pipeline.kpis() == before
        assert before["requests_per_day", "2026-12-04"] == 5
        assert before["unique_visitors_per_day", "2026-12-04"] == 1
        assert store.stored_offsets(conn, "g", pipeline.topic, [0]) == {0: 5}


def test_concurrent_writers_on_shared_rows_stay_exact(pipeline: Pipeline) -> None:
    with store.connect(pipeline.dsn) as conn:
        store.init_schema(conn)
        store.stored_offsets(conn, "g", pipeline.topic, [0, 1])
    errors: list[BaseException] = []

    def writer(partition: int) -> None:
        db = store.Database(pipeline.dsn)
        try:
            expected = store.OFFSET_BEGINNING
            for step in range(1, 41):
                batch = _batch(
                    pipeline.topic, partition, expected, step * 50, remote=f"10.0.{partition}.{step}"
                )
                db.run(lambda c, b=batch: store.commit_batch(c, "g", b), retry=store.RETRYABLE)
                expected = step * 50
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    kpis = pipeline.kpis()
    assert kpis["requests_per_day", "2026-12-04"] == 2 * 2000
    assert kpis["unique_visitors_per_day", "2026-12-04"] == 80
    with psycopg.connect(pipeline.dsn) as conn:
        offsets = conn.execute(
            "SELECT kafka_partition, next_offset FROM consumer_offsets ORDER BY 1"
        ).fetchall()
    assert offsets == [(0, 2000), (1, 2000)]


def test_a_consumer_stuck_mid_transaction_does_not_block_the_others(pipeline: Pipeline) -> None:
    with store.connect(pipeline.dsn) as conn:
        store.init_schema(conn)
        store.stored_offsets(conn, "g", pipeline.topic, [0, 1])
        store.commit_batch(conn, "g", _batch(pipeline.topic, 0, -2, 1))
    stuck = store.connect(pipeline.dsn)
    # Holds the row lock of a KPI row the next batch updates, then never says another word.
    stuck.execute("UPDATE kpis SET vcount = vcount WHERE kpi_key = 'requests_per_day'")
    with store.connect(pipeline.dsn) as other:
        store.commit_batch(other, "g", _batch(pipeline.topic, 1, -2, 1))  # waits for the server to end it
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        stuck.execute("SELECT 1")
    stuck.close()
    assert pipeline.kpis()["requests_per_day", "2026-12-04"] == 2
