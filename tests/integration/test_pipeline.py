"""End to end on the real broker and database: ship a generated log, consume it, compare every KPI row."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.integration.conftest import Pipeline
from tests.integration.oracle import expected_kpis


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _committed_offsets(pipeline: Pipeline) -> int:
    rows = pipeline.query("SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets")
    return int(rows[0][0])  # type: ignore[call-overload]


def test_every_kpi_row_equals_the_independent_count(pipeline: Pipeline, sample_log: Path) -> None:
    pipeline.run("ship", str(sample_log))
    pipeline.run("consume", "--until-idle")
    assert pipeline.kpis() == expected_kpis(sample_log)
    rejected = pipeline.query("SELECT reason, count(*) FROM rejected_records GROUP BY 1")
    assert dict(rejected) == {
        k[1]: v for k, v in expected_kpis(sample_log).items() if k[0] == "rejected_lines"
    }


def test_kpis_stay_exact_after_the_consumer_is_killed_mid_run(pipeline: Pipeline, sample_log: Path) -> None:
    pipeline.run("db", "init")  # so that the offsets can be watched before the consumer starts
    pipeline.run("ship", str(sample_log))
    consumer = pipeline.start("consume", "--batch-size", "500")
    _wait_for(lambda: _committed_offsets(pipeline) > 10_000, 120, "the first batches to be committed")
    consumer.send_signal(signal.SIGKILL)
    consumer.wait(30)
    assert _committed_offsets(pipeline) < 60_000, "the consumer finished before it could be killed"
    pipeline.run("consume", "--until-idle")
    assert pipeline.kpis() == expected_kpis(sample_log)


def _members_with_partitions(pipeline: Pipeline) -> int:
    admin = AdminClient({"bootstrap.servers": pipeline.brokers})
    group = admin.describe_consumer_groups([pipeline.group])[pipeline.group].result(10)
    return sum(1 for m in group.members if m.assignment.topic_partitions)


def test_two_consumers_in_one_group_give_exact_kpis(pipeline: Pipeline, sample_log: Path) -> None:
    pipeline.run("db", "init")
    consumers = [pipeline.start("consume", "--batch-size", "1000") for _ in range(2)]
    _wait_for(lambda: _members_with_partitions(pipeline) == 2, 60, "both consumers to share the partitions")
    pipeline.run("ship", str(sample_log))
    _wait_for(lambda: _committed_offsets(pipeline) >= 60_000, 180, "the consumers to drain the topic")
    for consumer in consumers:
        consumer.send_signal(signal.SIGTERM)
    outputs = [c.communicate(timeout=60) for c in consumers]
    assert [c.returncode for c in consumers] == [0, 0], outputs
    assert pipeline.kpis() == expected_kpis(sample_log)


def test_kpis_stay_exact_when_postgresql_drops_the_consumers_connections(
    pipeline: Pipeline, sample_log: Path
) -> None:
    pipeline.run("db", "init")
    pipeline.run("ship", str(sample_log))
    consumer = pipeline.start("consume", "--batch-size", "500")
    for threshold in (10_000, 25_000, 40_000):
        _wait_for(lambda t=threshold: _committed_offsets(pipeline) > t, 120, f"{threshold} records counted")
        killed = pipeline.query(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
            "'nginx-kpi' AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert killed[0][0] >= 1
    _wait_for(lambda: _committed_offsets(pipeline) >= 60_000, 180, "the consumer to drain the topic")
    consumer.send_signal(signal.SIGTERM)
    _, err = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, err
    assert "reconnecting" in err
    assert pipeline.kpis() == expected_kpis(sample_log)


def test_a_frozen_member_evicted_from_the_group_does_not_double_count(
    pipeline: Pipeline, sample_log: Path
) -> None:
    pipeline.run("db", "init")
    frozen, healthy = (pipeline.start("consume", "--batch-size", "500") for _ in range(2))
    _wait_for(lambda: _members_with_partitions(pipeline) == 2, 60, "both consumers to share the partitions")
    pipeline.run("ship", str(sample_log))
    _wait_for(lambda: _committed_offsets(pipeline) > 10_000, 120, "the first batches to be committed")
    # Frozen past its session timeout, it is evicted and the other member takes its partitions over;
    # when it thaws, whatever it had in flight must be refused, not counted a second time.
    frozen.send_signal(signal.SIGSTOP)
    _wait_for(lambda: _committed_offsets(pipeline) >= 60_000, 180, "the healthy consumer to drain the topic")
    frozen.send_signal(signal.SIGCONT)
    _wait_for(lambda: _members_with_partitions(pipeline) == 2, 60, "the thawed consumer to rejoin")
    for consumer in (frozen, healthy):
        consumer.send_signal(signal.SIGTERM)
    outputs = [c.communicate(timeout=60) for c in (frozen, healthy)]
    assert [c.returncode for c in (frozen, healthy)] == [0, 0], outputs
    assert pipeline.kpis() == expected_kpis(sample_log)
