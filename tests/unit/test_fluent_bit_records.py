"""The shipper's records against the Kafka messages a real Fluent Bit produced, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nginx_kpi.parse import load_parser, parser_sections
from nginx_kpi.ship import records_of
from nginx_kpi.tail import line_chunks
from tests.conftest import DEPLOY, FLUENT_BIT_FIXTURES

# Fluent Bit stamps lines it cannot parse (or whose time it cannot parse) with the time it read them.
READ_TIMES = {8: 1796413079.751126, 10: 1796413079.751147}


def _lines(n: int | None = None) -> list[bytes]:
    with (FLUENT_BIT_FIXTURES / "access.log").open("rb") as f:
        lines = [line for chunk, _ in line_chunks(f, final=True) for line in chunk]
    return lines[:n]


def _messages(name: str) -> list[bytes]:
    return (FLUENT_BIT_FIXTURES / name).read_bytes().splitlines()


def _clock(times: dict[int, float]) -> Iterator[float]:
    yield from (t for _, t in sorted(times.items()))


def _ship(parsers_file: Path, lines: list[bytes]) -> list[bytes]:
    clock = _clock(READ_TIMES)
    return list(records_of(lines, load_parser(parsers_file), clock=lambda: next(clock)))


def test_records_equal_fluent_bits_byte_for_byte() -> None:
    expected = _messages("kafka-messages.jsonl")
    got = _ship(FLUENT_BIT_FIXTURES / "parsers.conf", _lines())
    assert len(got) == len(expected) == 13
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, f"line {i + 1}"


def test_deploy_regex_with_time_keep_off_equals_fluent_bits_recording(tmp_path: Path) -> None:
    # This recording was made with a regex whose `method` stops at '"', as deploy/'s does.
    expected = _messages("kafka-messages-no-time-keep.jsonl")
    unparsed_read_time = json.loads(expected[8])["@timestamp"]
    text = (DEPLOY / "fluent-bit" / "parsers.conf").read_text().replace("Time_Keep   On", "Time_Keep Off")
    (tmp_path / "parsers.conf").write_text(text)
    got = list(
        records_of(_lines(10), load_parser(tmp_path / "parsers.conf"), clock=lambda: unparsed_read_time)
    )
    assert got == expected


def test_deploy_regex_differs_from_recorded_only_on_requests_nginx_could_not_parse() -> None:
    recorded = _messages("kafka-messages.jsonl")
    got = _ship(DEPLOY / "fluent-bit" / "parsers.conf", _lines())
    differing = [i for i, (g, r) in enumerate(zip(got, recorded, strict=True)) if g != r]
    assert differing == [4, 5]
    tls, dash = (json.loads(got[i]) for i in differing)
    assert tls["method"] == r"\x16\x03\x01\x00\xF1\x01\x00\x00\xED\x03\x03"
    assert (tls["code"], tls["size"], "path" in tls) == ("400", "157", False)
    assert (dash["method"], dash["code"], dash["size"], "path" in dash) == ("-", "400", "0", False)


def test_deploy_and_fixture_parsers_share_time_settings() -> None:
    deploy = parser_sections((DEPLOY / "fluent-bit" / "parsers.conf").read_text())["nginx_main"]
    recorded = parser_sections((FLUENT_BIT_FIXTURES / "parsers.conf").read_text())["nginx_main"]
    for key in ("time_key", "time_format", "time_keep", "format"):
        assert deploy[key] == recorded[key]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"caf\xc3\xa9 \xf0\x9f\x98\x80", rb'"log":"caf\u00e9 \ud83d\ude00"'),
        (b"bad \xff byte", b'"log":"bad \xee\x83\xbf byte"'),
        (b"tab\there\x01", rb'"log":"tab\there\u0001"'),
        (b'quote" back\\slash /', rb'"log":"quote\" back\\slash /"'),
    ],
)
def test_unparsed_lines_are_escaped_like_fluent_bit(raw: bytes, expected: bytes) -> None:
    (record,) = records_of([raw], load_parser(), clock=lambda: 1.5)
    assert record == b'{"@timestamp":1.5,' + expected + b"}"


def test_carriage_return_is_stripped_before_parsing_but_kept_when_unparsed() -> None:
    line = _lines(2)[1]
    parsed, unparsed = records_of([line + b"\r", b"junk\r"], load_parser(), clock=lambda: 2.0)
    assert parsed == next(records_of([line], load_parser(), clock=lambda: 2.0))
    assert unparsed == b'{"@timestamp":2.0,"log":"junk\\r"}'


def test_an_overlong_line_is_sent_truncated_as_unparsed_not_dropped() -> None:
    (record,) = records_of([b"x" * 50], load_parser(), clock=lambda: 3.0, max_line_bytes=10)
    assert record == b'{"@timestamp":3.0,"log":"xxxxxxxxxx"}'
