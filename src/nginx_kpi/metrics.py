"""Prometheus metrics of the consumer and the shipper (served with `--metrics-port`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram, start_http_server


@dataclass(frozen=True)
class ConsumerMetrics:
    """What a KPI consumer exports."""

    records: Counter
    rejected: Counter
    batches: Counter
    commit_seconds: Histogram

    def observe_batch(self, records: int, rejected: int, seconds: float) -> None:
        """Count one committed batch."""
        self.records.inc(records)
        self.rejected.inc(rejected)
        self.batches.inc()
        self.commit_seconds.observe(seconds)


CONSUMER_METRICS = ConsumerMetrics(
    records=Counter("nginx_kpi_records", "Kafka records counted or rejected, exactly once"),
    rejected=Counter("nginx_kpi_rejected_records", "records rejected (see table rejected_records)"),
    batches=Counter("nginx_kpi_batches", "batches committed to PostgreSQL"),
    commit_seconds=Histogram("nginx_kpi_commit_seconds", "time to store one batch in PostgreSQL"),
)
SHIPPED_LINES = Counter("nginx_kpi_shipped_lines", "log lines delivered to Kafka by `ship`")


def serve(port: int) -> None:
    """Expose /metrics on `port` (all interfaces, so a container's port can be published)."""
    start_http_server(port)
