"""Follow a growing log file like Fluent Bit's tail input: rotation-safe, resumable from a position file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from nginx_kpi.errors import InputError

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20


def line_chunks(f: BinaryIO, final: bool) -> Iterator[tuple[list[bytes], int]]:
    """Lines read from `f` in large chunks, each chunk with the bytes it consumed.

    Lines lose their newline only. A last line without a newline is held back (it may still be
    being written) unless `final`.
    """
    pending = b""
    while data := f.read(READ_SIZE):
        data = pending + data
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if cut:
            lines = data[:cut].split(b"\n")
            lines.pop()
            yield lines, cut
    if final and pending:
        yield [pending], len(pending)


@dataclass(frozen=True)
class Position:
    """A byte offset just after a complete line, in the file identified by (dev, inode)."""

    path: str
    dev: int
    inode: int
    offset: int


class PositionFile:
    """Where the follower resumes: saved only after the lines before it are delivered."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Position | None:
        """The saved position, or None on a first start."""
        try:
            return Position(**orjson.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            raise InputError(
                f"position file {self.path} is unreadable ({exc}); remove it to start over"
            ) from exc

    def save(self, position: Position) -> None:
        """Replace the saved position atomically, so a crash leaves the old or the new one."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(orjson.dumps(asdict(position)))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


class FileTail:
    """Complete lines of a file as it grows, across rotation by rename and by copytruncate."""

    def __init__(self, path: Path, start: Position | None, poll_interval: float, stopped: Callable[[], bool]):
        self.path = path
        self.poll_interval = poll_interval
        self.stopped = stopped
        self.file, self.offset = self._open_at(start)

    def chunks(self) -> Iterator[tuple[list[bytes], Position]]:
        """Yield (lines, position after them); the caller saves a position once its lines are delivered."""
        try:
            while not self.stopped():
                yield from self._read_available()
                new_file = self._rotated_file()
                if new_file is not None:
                    # nginx writes the old file until it reopens its log: drain it, then move on.
                    yield from self._read_available(final=True)
                    log.info("%s was rotated; reading the new file from the start", self.path)
                    self.file.close()
                    self.file, self.offset = new_file, 0
                    continue
                if _size(self.file) < self.offset:
                    log.info("%s was truncated (copytruncate); reading it from the start", self.path)
                    self.file.seek(0)
                    self.offset = 0
                    continue
                time.sleep(self.poll_interval)
        finally:
            self.file.close()

    def _read_available(self, final: bool = False) -> Iterator[tuple[list[bytes], Position]]:
        """Lines up to the end of the file; a partial last line waits for its newline unless `final`."""
        self.file.seek(self.offset)
        st = os.fstat(self.file.fileno())
        for lines, consumed in line_chunks(self.file, final):
            self.offset += consumed
            yield lines, Position(str(self.path), st.st_dev, st.st_ino, self.offset)

    def _rotated_file(self) -> BinaryIO | None:
        """The new file at the path when the one being read was renamed away, else None."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # renamed, not yet recreated: keep waiting
        mine = os.fstat(self.file.fileno())
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return None
        return _open(self.path)

    def _open_at(self, saved: Position | None) -> tuple[BinaryIO, int]:
        f = _open(self.path)
        st = os.fstat(f.fileno())
        if saved is None:
            return f, 0
        if (saved.dev, saved.inode) == (st.st_dev, st.st_ino):
            return f, saved.offset if saved.offset <= st.st_size else 0
        rotated = _find_inode(self.path, saved.dev, saved.inode)
        if rotated is None:
            log.warning(
                "%s was rotated while stopped and its old file is gone; reading the new one", self.path
            )
            return f, 0
        # Finish the rotated file from where we stopped; the rotation check then moves to the new one.
        f.close()
        log.info("resuming rotated file %s at byte %d", rotated, saved.offset)
        return _open(rotated), saved.offset


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _find_inode(path: Path, dev: int, inode: int) -> Path | None:
    for candidate in sorted(path.parent.glob(path.name + "*")):
        st = candidate.stat()
        if (st.st_dev, st.st_ino) == (dev, inode):
            return candidate
    return None
