"""Reading lines like Fluent Bit's tail: chunked, newline-delimited, a long line never stops the file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from nginx_kpi.parse import load_parser
from nginx_kpi.ship import records_of
from nginx_kpi.tail import FileTail, Position, PositionFile, line_chunks


def _lines(data: bytes, final: bool) -> list[bytes]:
    return [line for chunk, _ in line_chunks(io.BytesIO(data), final) for line in chunk]


def test_a_line_longer_than_a_read_does_not_stop_the_lines_after_it() -> None:
    long_line = b"x" * (3 << 20)
    data = b"first\n" + long_line + b"\nafter\n"
    assert _lines(data, final=False) == [b"first", long_line, b"after"]
    records = list(records_of(_lines(data, final=False), load_parser(), clock=lambda: 1.0))
    assert len(records) == 3
    assert len(json.loads(records[1])["log"]) == 256 * 1024 - 2


def test_a_last_line_without_newline_waits_unless_final() -> None:
    assert _lines(b"a\nb\npartial", final=False) == [b"a", b"b"]
    assert _lines(b"a\nb\npartial", final=True) == [b"a", b"b", b"partial"]


def test_consumed_bytes_add_up_to_the_offset_after_the_last_newline() -> None:
    data = b"one\ntwo\nthree"
    assert sum(n for _, n in line_chunks(io.BytesIO(data), final=False)) == len(b"one\ntwo\n")


def test_position_file_round_trips_atomically(tmp_path: Path) -> None:
    positions = PositionFile(tmp_path / "pos")
    assert positions.load() is None
    positions.save(Position("/var/log/a.log", 1, 2, 3))
    assert positions.load() == Position("/var/log/a.log", 1, 2, 3)
    assert not (tmp_path / "pos.tmp").exists()


def test_tail_resumes_at_the_saved_offset_of_the_same_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"old\nnew\n")
    st = log.stat()
    tail = FileTail(log, Position(str(log), st.st_dev, st.st_ino, 4), 0.01, stopped=lambda: False)
    lines, position = next(tail.chunks())
    assert (lines, position.offset) == ([b"new"], 8)
