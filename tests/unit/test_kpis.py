"""KPI deltas of a batch: bucketing in UTC across zones and day boundaries, declared once."""

from __future__ import annotations

from collections import Counter

from nginx_kpi.kpis import KPI_NAMES, KPIS, REJECTED_LINES, kpi_deltas_for, time_buckets
from nginx_kpi.parse import load_parser
from nginx_kpi.record import Columns, Request, decode_batch, decode_request
from nginx_kpi.ship import records_of
from tests.conftest import FLUENT_BIT_FIXTURES


def _request(epoch: int, remote: str = "1.1.1.1", status: str = "200", size: int = 10) -> Request:
    return Request(epoch, remote, "GET", "/", status, size)


def test_time_buckets_are_utc_strings() -> None:
    assert time_buckets(1691835300 // 60) == ("2023-08-12 10:15", "2023-08-12 10", "2023-08-12")


def test_requests_either_side_of_midnight_land_in_their_own_day() -> None:
    before, after = 1704067199, 1704067200  # 2023-12-31 23:59:59 and 2024-01-01 00:00:00 UTC
    counts = kpi_deltas_for(Columns.of([_request(before), _request(after)])).counts
    assert counts["requests_per_day", "2023-12-31"] == 1
    assert counts["requests_per_day", "2024-01-01"] == 1
    assert counts["requests_per_minute", "2023-12-31 23:59"] == 1
    assert counts["status_class_per_minute", "2024-01-01 00:00|2xx"] == 1


def test_a_local_time_just_after_midnight_is_bucketed_the_previous_utc_day() -> None:
    line = b'1.2.3.4 - - [01/Jan/2024:00:30:00 +0100] "GET /x HTTP/1.1" 200 5 "-" "curl/8" "-"'
    (record,) = records_of([line], load_parser(), clock=lambda: 0.0)
    request = decode_request(record)
    assert isinstance(request, Request)
    counts = kpi_deltas_for(Columns.of([request])).counts
    assert counts["requests_per_day", "2023-12-31"] == 1
    assert counts["requests_per_hour", "2023-12-31 23"] == 1


def test_counts_bytes_and_distinct_visitors() -> None:
    batch = [_request(0, "a", "404", 5), _request(1, "a", "200", 7), _request(2, "b", "500", 0)]
    deltas = kpi_deltas_for(Columns.of(batch), ["unparsed"])
    assert deltas.counts["bytes_per_hour", "1970-01-01 00"] == 12
    assert deltas.counts["requests_by_status", "404"] == 1
    assert deltas.counts[REJECTED_LINES, "unparsed"] == 1
    assert deltas.members == {
        ("unique_visitors_per_day", "1970-01-01", "a"),
        ("unique_visitors_per_day", "1970-01-01", "b"),
    }


def test_every_counted_kpi_sums_to_the_number_of_requests() -> None:
    batch = [_request(60 * i, str(i % 3), "301") for i in range(100)]
    counts = kpi_deltas_for(Columns.of(batch)).counts
    for kpi in KPIS:
        if kpi.distinct_of is None and kpi.name != "bytes_per_hour":
            assert sum(n for (k, _), n in counts.items() if k == kpi.name) == 100, kpi.name
    assert Counter(k for k, _ in counts).keys() <= set(KPI_NAMES)


def test_kpi_names_are_unique() -> None:
    assert len(set(KPI_NAMES)) == len(KPI_NAMES)


def test_the_fast_batch_decoder_agrees_with_the_one_record_decoder() -> None:
    values = (FLUENT_BIT_FIXTURES / "kafka-messages.jsonl").read_bytes().splitlines()
    values += [
        b"not json",
        b'{"@timestamp":1,"remote":"a","time":"t","method":"GET","code":"200","size":"1"}',
    ]
    columns, rejected = decode_batch(values)
    one_by_one = [decode_request(v) for v in values]
    assert [(i, r.reason) for i, r in rejected] == [
        (i, r.reason) for i, r in enumerate(one_by_one) if not isinstance(r, Request)
    ]
    assert columns == Columns.of(r for r in one_by_one if isinstance(r, Request))
