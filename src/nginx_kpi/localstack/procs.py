"""Process, port, file and wait helpers shared by the local Kafka and PostgreSQL nodes."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nginx_kpi.errors import NginxKpiError

LOOPBACK = "127.0.0.1"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MAX_LINE = 240


class StackError(NginxKpiError):
    """A local-stack problem the user can act on, in one line; the CLI prints it without a traceback."""


def strip_ansi(text: str) -> str:
    """text without terminal colour codes (mvn emits some even in batch mode)."""
    return _ANSI.sub("", text)


def one_line(text: str, lines: int = 5, width: int = _MAX_LINE) -> str:
    """Join the last non-blank lines of text with ' | ' so an error message stays on one line."""
    clean = [strip_ansi(ln).strip() for ln in text.splitlines()]
    kept = [ln[:width] for ln in clean if ln][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file as one line, or a note that it is missing."""
    try:
        with path.open("rb") as fh:
            # Logs can be large; the end is all we need.
            fh.seek(max(0, path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return one_line(text, lines)


def pid_alive(pid: int) -> bool:
    """True when pid is a live process (a zombie that nobody reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """The argv of a process, or [] when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path) -> int | None:
    """The integer on the first line of a pid file, or None when absent or garbled."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on host:port (or holds it bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so a port in TIME_WAIT after our own shutdown does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def ensure_ports_free(ports: Sequence[int], what: str, env_var: str) -> None:
    """Raise StackError when one of the ports is taken by a process that is not ours."""
    for port in ports:
        if port_in_use(port):
            raise StackError(
                f"{what}: port {port} on {LOOPBACK} is already in use by another process; "
                f"stop that process or choose another port (set {env_var})"
            )


def wait_for(
    probe: Callable[[], bool],
    *,
    deadline: float,
    what: str,
    log: Path,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll probe until it is true; fail early when the process died, or at the deadline."""
    interval = 0.05
    while True:
        if probe():
            return
        if alive is not None and not alive():
            raise StackError(f"{what} exited while starting; log {log}: {tail(log)}")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not become ready in time; log {log}: {tail(log)}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.5)


def run_checked(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    summarize: Callable[[str], str] | None = None,
) -> str:
    """Run a command to completion; raise StackError with its last output lines on failure.

    summarize, when given, turns the failed command's output into the message's tail.
    """
    try:
        done = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise StackError(f"{what}: command not found: {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode("utf-8", "replace") if isinstance(exc.output, bytes) else ""
        raise StackError(f"{what} timed out after {timeout:.0f}s: {one_line(out)}") from exc
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        detail = summarize(out) if summarize else one_line(out, 8)
        raise StackError(f"{what} failed (exit {done.returncode}): {detail}")
    return out


def spawn_detached(cmd: Sequence[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start cmd in its own session with output appended to log; return its pid.

    A throw-away sh starts the command in the background and exits, so the service is re-parented
    away from us: it outlives this Python process and never lingers as our unreaped zombie.
    """
    script = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(log), *cmd],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        start_new_session=True,
        timeout=30,
        check=False,
    )
    pid = out.stdout.decode().strip()
    if out.returncode != 0 or not pid.isdigit():
        raise StackError(f"could not start {cmd[0]}: {one_line(out.stderr.decode('utf-8', 'replace'))}")
    return int(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to timeout seconds for pid to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL when the process is still there after grace seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait):
            return
    raise StackError(f"process {pid} did not exit even after SIGKILL")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock file so two commands do not start or stop the stack at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_repo_root(marker: Path) -> Path | None:
    """The nearest directory above this package or the cwd that contains marker (a relative path)."""
    starts = (Path(__file__).resolve().parent, Path.cwd().resolve())
    for start in starts:
        for candidate in (start, *start.parents):
            if (candidate / marker).is_file():
                return candidate
    return None
