"""Pure parts of nginx_kpi.localstack: config rendering, parsing, pid and port helpers."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from pathlib import Path

import pytest

from nginx_kpi.localstack import LocalStack, StackError, kafka, postgres, procs, stack

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "local" / "kafka"


def _dead_pid() -> int:
    """A pid that is not in use right now."""
    pid = 4_000_000
    while procs.pid_alive(pid):
        pid -= 1
    return pid


def test_pom_pins_one_kafka_4_version() -> None:
    assert re.fullmatch(r"4\.\d+\.\d+", kafka.pom_kafka_version(DEPLOY / "pom.xml"))


def test_pom_without_version_is_a_stack_error(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"><properties/></project>')
    with pytest.raises(StackError, match=r"kafka\.version"):
        kafka.pom_kafka_version(pom)


def test_cluster_id_has_kafka_uuid_shape() -> None:
    for _ in range(200):
        cid = kafka.new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_server_properties_template_renders_every_placeholder(tmp_path: Path) -> None:
    text = kafka.render_server_properties(
        (DEPLOY / "server.properties").read_text(), broker_port=19092, data_dir=tmp_path / "data"
    )
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    assert "$" not in text
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert kafka.java_major_version(output) == major


def test_broker_command_runs_kafka_main_with_config(tmp_path: Path) -> None:
    cmd = kafka.broker_command(
        "java", tmp_path / "libs", tmp_path / "s.properties", tmp_path / "l.yaml", tmp_path
    )
    assert cmd[-2:] == ["kafka.Kafka", str(tmp_path / "s.properties")]
    assert "-Xmx512m" in cmd
    assert f"{tmp_path / 'libs'}/*" in cmd
    assert f"-Dlog4j2.configurationFile={tmp_path / 'l.yaml'}" in cmd


def test_pick_bin_dir_takes_newest_complete_version(tmp_path: Path) -> None:
    for version, binaries in (
        ("13", postgres.REQUIRED_BINARIES),
        ("16", postgres.REQUIRED_BINARIES),
        ("17", ()),
    ):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in binaries:
            (bin_dir / name).touch()
    assert postgres.pick_bin_dir(tmp_path.glob("*/bin")) == tmp_path / "16" / "bin"
    assert postgres.pick_bin_dir([]) is None


def test_socket_dir_falls_back_to_tcp_only_when_path_too_long(tmp_path: Path) -> None:
    assert postgres.socket_dir_setting(tmp_path, 15432) == str(tmp_path)
    assert postgres.socket_dir_setting(Path("/" + "x" * 100), 15432) == ""


def test_render_conf_listens_on_loopback_and_quotes_paths() -> None:
    conf = postgres.render_conf(15432, "/tmp/it's")
    assert "listen_addresses = '127.0.0.1'" in conf
    assert "port = 15432" in conf
    assert "unix_socket_directories = '/tmp/it''s'" in conf


def test_dsn_and_bootstrap_follow_ports(tmp_path: Path) -> None:
    local = LocalStack(state_dir=tmp_path, kafka_port=29092, postgres_port=25432)
    assert local.kafka_bootstrap == "127.0.0.1:29092"
    assert local.postgres_dsn == "postgresql://nginx_kpi@127.0.0.1:25432/nginx_kpi"


def test_defaults_come_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGINX_KPI_STACK_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("NGINX_KPI_KAFKA_PORT", "29999")
    monkeypatch.delenv("NGINX_KPI_PG_PORT", raising=False)
    local = LocalStack()
    assert local.state_dir == tmp_path / "st"
    assert local.kafka_bootstrap == "127.0.0.1:29999"
    assert local.postgres_dsn.endswith(f":{stack.DEFAULT_PG_PORT}/nginx_kpi")


def test_default_state_dir_is_in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NGINX_KPI_STACK_DIR", raising=False)
    assert stack.default_state_dir() == ROOT / ".stack"


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-1"])
def test_bad_port_in_environment_is_a_stack_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGINX_KPI_PG_PORT", raw)
    with pytest.raises(StackError, match="NGINX_KPI_PG_PORT"):
        stack.env_port("NGINX_KPI_PG_PORT", 15432)


def test_status_of_fresh_state_dir_is_stopped(tmp_path: Path) -> None:
    local = LocalStack(state_dir=tmp_path, kafka_port=29092, postgres_port=25432)
    assert local.status() == {"kafka": "stopped", "postgres": "stopped"}
    local.down()  # nothing running: a no-op, not an error


def test_stale_and_foreign_pid_files_do_not_count(tmp_path: Path) -> None:
    node = kafka.KafkaNode(tmp_path, 29092, None)
    node.root.mkdir(parents=True)
    node.pid_file.write_text(f"{_dead_pid()}\n")
    assert node.pid() is None
    node.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not our broker
    assert node.pid() is None
    pg = postgres.PostgresNode(tmp_path, 25432)
    pg.data.mkdir(parents=True)
    (pg.data / "postmaster.pid").write_text(f"{_dead_pid()}\n{pg.data}\n")
    assert pg.status() == "stopped"


def test_one_line_keeps_the_last_lines_and_strips_colour() -> None:
    assert procs.one_line("a\n\x1b[1mb\x1b[0m\n\nc\nd", lines=3) == "b | c | d"
    assert procs.one_line("") == "(no output)"


def test_tail_of_missing_log_names_the_path(tmp_path: Path) -> None:
    assert str(tmp_path / "nope.log") in procs.tail(tmp_path / "nope.log")


def test_read_pid(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    assert procs.read_pid(path) is None
    path.write_text("123\n/data\n")
    assert procs.read_pid(path) == 123
    path.write_text("garbage")
    assert procs.read_pid(path) is None


def test_port_in_use_and_clear_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert procs.port_in_use(port)
        with pytest.raises(StackError, match=rf"port {port} .* already in use.*SOME_ENV"):
            procs.ensure_ports_free([port], "Thing", "SOME_ENV")
    assert not procs.port_in_use(port)


def test_wait_for_deadline_names_the_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("line1\nboom: it broke\n")
    with pytest.raises(StackError, match=r"did not become ready.*svc\.log.*boom: it broke"):
        procs.wait_for(lambda: False, deadline=time.monotonic() + 0.2, what="svc", log=log)


def test_wait_for_fails_fast_when_process_died(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StackError, match="exited while starting"):
        procs.wait_for(
            lambda: False, deadline=started + 30, what="svc", log=tmp_path / "x", alive=lambda: False
        )
    assert time.monotonic() - started < 5


def test_run_checked_reports_exit_code_and_output() -> None:
    with pytest.raises(StackError, match=r"demo failed \(exit 3\): out-1 \| out-2"):
        procs.run_checked(["sh", "-c", "echo out-1; echo out-2 >&2; exit 3"], what="demo", timeout=10)
    with pytest.raises(StackError, match="command not found"):
        procs.run_checked(["/nonexistent/binary"], what="demo", timeout=10)


def test_spawn_detached_outlives_its_starter_and_terminates(tmp_path: Path) -> None:
    pid = procs.spawn_detached(["sleep", "60"], log=tmp_path / "out.log", cwd=tmp_path)
    try:
        assert procs.pid_alive(pid)
        assert os.getsid(pid) != os.getsid(0)  # own session: no terminal signals from ours
        assert procs.cmdline(pid) == ["sleep", "60"]
    finally:
        procs.terminate(pid, grace=5)
    assert not procs.pid_alive(pid)


def test_missing_traverse_bits(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    inner = closed / "inner"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    assert closed in postgres.missing_traverse_bits(inner)
    closed.chmod(0o711)
    assert closed not in postgres.missing_traverse_bits(inner)


def test_mvn_error_summary_keeps_the_cause_and_drops_the_footer() -> None:
    output = (
        "\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project x: Could not find artifact "
        "org.apache.kafka:kafka_2.13:jar:4.1.99 in central -> [Help 1]\n"
        "[ERROR] \n[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n"
        "[ERROR] Re-run Maven using the -X switch to enable full debug logging.\n"
        "[ERROR] For more information about the errors and possible solutions, please read:\n"
        "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException\n"
    )
    assert kafka.mvn_error_summary(output) == (
        "Failed to execute goal on project x: Could not find artifact "
        "org.apache.kafka:kafka_2.13:jar:4.1.99 in central -> [Help 1]"
    )
