"""The Kafka record: Fluent Bit's JSON encoding of a parsed line, and its decoding into a request."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from nginx_kpi.parse import Parsed

TIMESTAMP_KEY = "@timestamp"
UNPARSED_KEY = "log"


class Request(NamedTuple):
    """One counted request, reduced to what the KPIs need."""

    epoch: int
    remote: str
    method: str
    path: str
    status: str
    size: int


class Rejection(NamedTuple):
    """A record that cannot be counted: a short reason, the raw text, and what was wrong."""

    reason: str
    raw: str
    detail: str


@dataclass
class Columns:
    """The counted requests of a batch, one list per field (all of the same length)."""

    minute: list[int] = field(default_factory=list)  # minutes since the epoch, UTC
    remote: list[str] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)  # query string removed
    status: list[str] = field(default_factory=list)
    size: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, requests: Iterable[Request]) -> Columns:
        """Columns holding these requests."""
        columns = cls()
        for request in requests:
            columns.append(request)
        return columns

    def append(self, request: Request) -> None:
        """Add one request."""
        self.minute.append(request.epoch // 60)
        self.remote.append(request.remote)
        self.method.append(request.method)
        self.path.append(request.path)
        self.status.append(request.status)
        self.size.append(request.size)


def decode_batch(values: list[bytes | None]) -> tuple[Columns, list[tuple[int, Rejection]]]:
    """Decode many message values at once: the requests as columns, and (index, rejection) pairs.

    The fast path trusts nothing it does not check; anything unusual takes `decode_request`'s path.
    """
    columns = Columns()
    minute, remote, method, path = columns.minute, columns.remote, columns.method, columns.path
    status, size = columns.status, columns.size
    rejected: list[tuple[int, Rejection]] = []
    loads, statuses = orjson.loads, _STATUSES
    for i, value in enumerate(values):
        try:
            record = loads(value)  # type: ignore[arg-type]
            epoch, code, nbytes = record[TIMESTAMP_KEY], record["code"], record["size"]
            who, verb, where = record["remote"], record["method"], record.get("path", "-")
            if (
                "time" in record
                and type(epoch) is float
                and code in statuses
                and ((nbytes.isdigit() and nbytes.isascii()) or nbytes == "-")
                and type(who) is type(verb) is type(where) is str
            ):
                minute.append(int(epoch) // 60)
                remote.append(who)
                method.append(verb)
                path.append(where.partition("?")[0])
                status.append(code)
                size.append(0 if nbytes == "-" else int(nbytes))
                continue
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass
        result = decode_request(value)
        if isinstance(result, Rejection):
            rejected.append((i, result))
        else:
            columns.append(result)
    return columns, rejected


_STATUSES = frozenset(f"{n:03d}" for n in range(1000))


def fluent_bit_double(epoch: float) -> bytes:
    """A time as Fluent Bit's `Timestamp_Format double` writes it: `1684851668.0`, `1796413079.751126`."""
    return (b"%.1f" if epoch == int(epoch) else b"%.16g") % epoch


def encode_record(parsed: Parsed | None, line: str, clock: Callable[[], float]) -> bytes:
    """The JSON value Fluent Bit sends for `line`: timestamp key first, then fields in regex order.

    An unparsed line is sent as `{"log": line}`; it and a line whose time did not parse get `clock()`.
    """
    if parsed is None:
        fields: dict[str, str] = {UNPARSED_KEY: line}
        prefix = _timestamp_prefix(clock())
    else:
        fields = parsed.fields
        prefix = _timestamp_prefix(clock()) if parsed.epoch is None else _cached_prefix(parsed.epoch)
    if line.isascii():  # fields are parts of the line
        return prefix + orjson.dumps(fields)[1:]  # orjson escapes ASCII exactly as Fluent Bit does
    return prefix + b",".join(_json_str(k) + b":" + _json_str(v) for k, v in fields.items()) + b"}"


def _timestamp_prefix(epoch: float) -> bytes:
    return b'{"' + TIMESTAMP_KEY.encode() + b'":' + fluent_bit_double(epoch) + b","


# Request times repeat from line to line; read times (the clock) do not, so they skip the cache.
_cached_prefix = lru_cache(maxsize=4096)(_timestamp_prefix)


def _json_str(text: str) -> bytes:
    """Fluent Bit's escaping with `json.escape_unicode` on (its default), for text that is not ASCII.

    Characters beyond ASCII become lowercase `\\uXXXX` (surrogate pairs above U+FFFF); a byte that was not
    valid UTF-8 (decoded by surrogateescape to U+DC80..U+DCFF) becomes the raw UTF-8 of U+E000 + byte.
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if code < 0x80:
            out.append(orjson.dumps(ch).decode()[1:-1])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(chr(0xE000 + code - 0xDC00))
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return b'"' + "".join(out).encode() + b'"'


def decode_request(value: bytes | None) -> Request | Rejection:
    """Turn a Kafka message value into a request to count, or a rejection saying why not."""
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return Rejection("bad_json", _text_of(value), f"not JSON: {exc}")
    if not isinstance(record, dict):
        return Rejection("bad_json", _text_of(value), "not a JSON object")
    try:
        return _request_of(record)
    except _Rejected as exc:
        raw = record.get(UNPARSED_KEY) if exc.reason == "unparsed" else None
        return Rejection(exc.reason, raw if isinstance(raw, str) else _text_of(value), exc.detail)


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _request_of(record: dict[str, Any]) -> Request:
    if "remote" not in record and UNPARSED_KEY in record:
        raise _Rejected("unparsed", "the line does not match the nginx_main format")
    if "time" not in record:
        raise _Rejected(
            "bad_time", "no `time` key: the request time could not be parsed (or Time_Keep is Off)"
        )
    path = _text(record, "path", "-")
    return Request(
        epoch=_epoch_of(record.get(TIMESTAMP_KEY)),
        remote=_text(record, "remote"),
        method=_text(record, "method"),
        path=path.partition("?")[0],
        status=_status_of(record.get("code")),
        size=_size_of(record.get("size")),
    )


def _text(record: dict[str, Any], key: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise _Rejected("bad_record", f"`{key}` is missing or not a string")
    return value


def _epoch_of(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value // 1)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp() // 1)
        except ValueError:
            pass
    raise _Rejected("bad_record", f"`{TIMESTAMP_KEY}` is not an epoch number or an ISO 8601 time")


def _status_of(value: object) -> str:
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isdigit():
        return value
    raise _Rejected("bad_record", f"status {value!r} is not a 3-digit code")


def _size_of(value: object) -> int:
    if value == "-":
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _Rejected("bad_record", f"size {value!r} is neither a byte count nor '-'")


def _text_of(value: bytes | None) -> str:
    # PostgreSQL text cannot hold NUL, and a corrupt message need not be UTF-8: keep every byte visible.
    return (value or b"").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
