"""`ship --follow`: rotation by rename and copytruncate, and restarts, lose and repeat nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from nginx_kpi.generate import LogSpec, generate_lines
from nginx_kpi.parse import load_parser
from nginx_kpi.ship import records_of
from tests.integration.conftest import Pipeline


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="ascii") as f:
        f.writelines(line + "\n" for line in lines)


def _wait_until_read(position_file: Path, path: Path, timeout: float = 30.0) -> None:
    """Wait until the follower has delivered everything in `path` (its saved offset is the file size)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if position_file.exists():
            saved = json.loads(position_file.read_bytes())
            if saved["inode"] == path.stat().st_ino and saved["offset"] == path.stat().st_size:
                return
        time.sleep(0.05)
    raise AssertionError(f"the follower did not catch up with {path} within {timeout} s")


def _stop(shipper: subprocess.Popen[str]) -> None:
    shipper.send_signal(signal.SIGTERM)
    _, err = shipper.communicate(timeout=30)
    assert shipper.returncode == 0, err


def test_follow_survives_rotation_and_restart_without_gaps_or_duplicates(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    lines = list(generate_lines(LogSpec(lines=3000, seed=11, malformed_ratio=0.0)))
    chunks = [lines[i : i + 500] for i in range(0, 3000, 500)]
    log, positions = tmp_path / "access.log", tmp_path / "access.pos"
    follow = ("ship", "--follow", str(log), "--position-file", str(positions))
    _append(log, chunks[0])
    shipper = pipeline.start(*follow)
    _wait_until_read(positions, log)

    # Rotation by rename; nginx keeps writing the old file until it reopens its log.
    log.rename(tmp_path / "access.log.1")
    _append(tmp_path / "access.log.1", chunks[1])
    _append(log, chunks[2])
    _wait_until_read(positions, log)

    # Rotation by copytruncate, once the follower has caught up (as logrotate's delay allows).
    shutil.copy(log, tmp_path / "access.log.2")
    log.write_bytes(b"")
    _append(log, chunks[3])
    _wait_until_read(positions, log)

    # Stopped and restarted: it resumes from the position file, also across a rename while stopped.
    _stop(shipper)
    _append(log, chunks[4])
    log.rename(tmp_path / "access.log.3")
    _append(log, chunks[5])
    shipper = pipeline.start(*follow)
    _wait_until_read(positions, log)
    _stop(shipper)

    expected = Counter(records_of((line.encode() for line in lines), load_parser(), clock=time.time))
    assert Counter(pipeline.topic_values(len(lines))) == expected


def test_a_line_without_newline_waits_for_it(pipeline: Pipeline, tmp_path: Path) -> None:
    log, positions = tmp_path / "access.log", tmp_path / "access.pos"
    first, second = generate_lines(LogSpec(lines=2, seed=5, malformed_ratio=0.0))
    log.write_text(first + "\n" + second[:40], encoding="ascii")
    shipper = pipeline.start("ship", "--follow", str(log), "--position-file", str(positions))
    deadline = time.monotonic() + 30
    while not positions.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _append(log, [second[40:]])
    _wait_until_read(positions, log)
    _stop(shipper)
    expected = records_of([first.encode(), second.encode()], load_parser(), clock=time.time)
    assert sorted(pipeline.topic_values(2)) == sorted(expected)
