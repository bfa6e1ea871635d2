"""Records -> requests or rejections: every record is either counted or rejected with a reason."""

from __future__ import annotations

import orjson
import pytest

from nginx_kpi.record import Rejection, Request, decode_request
from tests.conftest import FLUENT_BIT_FIXTURES


def _decoded(name: str) -> list[Request | Rejection]:
    return [decode_request(m) for m in (FLUENT_BIT_FIXTURES / name).read_bytes().splitlines()]


def test_recorded_messages_decode_to_requests_or_reasoned_rejections() -> None:
    results = _decoded("kafka-messages.jsonl")
    reasons = [r.reason if isinstance(r, Rejection) else None for r in results]
    # The recorded regex shifts the fields of the TLS and "-" requests ('code' becomes '"-"').
    assert reasons == [
        None,
        None,
        None,
        None,
        "bad_record",
        "bad_record",
        None,
        None,
        "unparsed",
        None,
        "bad_time",
        None,
        None,
    ]
    first = results[0]
    assert first == Request(1684851668, "163.116.184.104", "POST", "/data.php", "200", 9258)


def test_unparsed_rejection_keeps_the_raw_line() -> None:
    rejection = _decoded("kafka-messages.jsonl")[8]
    assert rejection == Rejection("unparsed", "this is not an nginx log line at all", rejection.detail)


def test_time_zone_offsets_are_converted_to_utc() -> None:
    results = _decoded("kafka-messages.jsonl")
    assert isinstance(results[3], Request) and results[3].epoch == 1684851721  # 16:22:01 +0200
    assert isinstance(results[9], Request) and results[9].epoch == 1684869840  # 14:24:00 -0500


def test_escapes_size_dash_and_combined_lines() -> None:
    results = _decoded("kafka-messages.jsonl")
    assert isinstance(results[3], Request) and results[3].path == r"/caf\xC3\xA9/men\xC3\xBA"
    assert isinstance(results[6], Request) and results[6].size == 0  # size "-"
    assert isinstance(results[11], Request) and results[11].path == "/combined-only"
    assert isinstance(results[2], Request) and results[2].remote == "2001:db8::1"


def test_iso8601_timestamps_are_understood() -> None:
    value = orjson.loads((FLUENT_BIT_FIXTURES / "kafka-messages-iso8601.jsonl").read_bytes().splitlines()[0])
    value["time"] = "23/May/2023:14:21:08 +0000"
    result = decode_request(orjson.dumps(value))
    assert isinstance(result, Request) and result.epoch == 1684851668


def test_time_keep_off_records_are_rejected_as_bad_time() -> None:
    results = _decoded("kafka-messages-no-time-keep.jsonl")
    assert {r.reason for r in results if isinstance(r, Rejection)} == {"bad_time", "unparsed"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\xffgarbage", "bad_json"),
        (b"", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"@timestamp":1.0,"remote":"a","time":"t","method":"GET","code":"20x","size":"1"}', "bad_record"),
        (b'{"@timestamp":1.0,"remote":"a","time":"t","method":"GET","code":"200","size":"x"}', "bad_record"),
        (
            b'{"@timestamp":"soon","remote":"a","time":"t","method":"GET","code":"200","size":"1"}',
            "bad_record",
        ),
        (b'{"@timestamp":1.0,"remote":7,"time":"t","method":"GET","code":"200","size":"1"}', "bad_record"),
    ],
)
def test_corrupt_messages_are_rejected_not_raised(value: bytes, reason: str) -> None:
    result = decode_request(value)
    assert isinstance(result, Rejection) and result.reason == reason
    assert "\x00" not in result.raw
