"""Parse nginx lines the way Fluent Bit's regex parser does, from the same `parsers.conf`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from nginx_kpi.errors import ConfigError

DEFAULT_PARSER = "nginx_main"

# Onigmo (Fluent Bit's regex engine) writes named groups as (?<name>...); Python wants (?P<name>...).
# Look-behinds, (?<= and (?<!, are left alone.
_ONIGMO_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


def default_parsers_file() -> Path:
    """The `parsers.conf` shipped with the package (a link to deploy/fluent-bit/parsers.conf)."""
    return Path(str(resources.files("nginx_kpi").joinpath("parsers.conf")))


class Parsed(NamedTuple):
    """A matched line: its fields in regex order, and the request time if it could be parsed."""

    fields: dict[str, str]
    epoch: float | None


@dataclass(frozen=True)
class LineParser:
    """One `[PARSER]` section of a Fluent Bit `parsers.conf` (regex format), compiled for Python."""

    name: str
    regex: re.Pattern[str]
    time_key: str | None
    time_format: str | None
    time_keep: bool
    _epochs: dict[str, float | None] = field(default_factory=dict, compare=False, repr=False)

    def parse(self, line: str) -> Parsed | None:
        """Fields of a matching line, or None when the regex does not match (Fluent Bit sends `log`)."""
        match = self.regex.search(line)
        if match is None:
            return None
        fields = match.groupdict()
        if not all(fields.values()):
            # Fluent Bit's Skip_Empty_Values (on by default) drops empty groups like unmatched ones.
            fields = {k: v for k, v in fields.items() if v}
        if self.time_key is None or self.time_key not in fields:
            return Parsed(fields, None)
        epoch = self._epoch_of(fields[self.time_key])
        # Fluent Bit drops the time key when the time does not parse, even with Time_Keep On.
        if epoch is None or not self.time_keep:
            del fields[self.time_key]
        return Parsed(fields, epoch)

    def _epoch_of(self, text: str) -> float | None:
        # Lines of one second share their time string, so a small cache skips most strptime calls.
        try:
            return self._epochs[text]
        except KeyError:
            pass
        try:
            epoch: float | None = datetime.strptime(text, self.time_format or "").timestamp()
        except ValueError:
            epoch = None
        if len(self._epochs) >= _TIME_CACHE_MAX:
            self._epochs.clear()
        self._epochs[text] = epoch
        return epoch


_TIME_CACHE_MAX = 65_536


def load_parser(path: Path | None = None, name: str = DEFAULT_PARSER) -> LineParser:
    """Read parser `name` from a Fluent Bit parsers file (the packaged one by default)."""
    path = path or default_parsers_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read parsers file {path}: {exc.strerror}") from exc
    sections = parser_sections(text)
    if name not in sections:
        known = ", ".join(sorted(sections)) or "none"
        raise ConfigError(f"parser {name!r} not found in {path} (parsers there: {known})")
    return _compile(sections[name], path)


def parser_sections(text: str) -> dict[str, dict[str, str]]:
    """The `[PARSER]` sections of a classic Fluent Bit config, by name; keys lower-cased."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = {} if line.upper() == "[PARSER]" else None
            if current is not None:
                sections[f"#{len(sections)}"] = current
            continue
        if current is not None:
            key, _, value = line.partition(" ")
            current[key.lower()] = value.strip()
    return {s["name"]: s for s in sections.values() if "name" in s}


def _compile(section: dict[str, str], path: Path) -> LineParser:
    name = section["name"]
    if section.get("format", "").lower() != "regex" or "regex" not in section:
        raise ConfigError(f"parser {name!r} in {path} is not a regex parser")
    try:
        regex = re.compile(_ONIGMO_NAMED_GROUP.sub("(?P<", section["regex"]))
    except re.error as exc:
        raise ConfigError(f"parser {name!r} in {path}: regex not usable from Python: {exc}") from exc
    return LineParser(
        name=name,
        regex=regex,
        time_key=section.get("time_key"),
        time_format=section.get("time_format"),
        time_keep=section.get("time_keep", "off").lower() in {"on", "true", "yes", "1"},
    )
