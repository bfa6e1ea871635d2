"""A single-node KRaft Kafka broker run from the official jars, fetched from Maven Central by mvn."""

from __future__ import annotations

import base64
import re
import shutil
import string
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from nginx_kpi.localstack import procs
from nginx_kpi.localstack.procs import LOOPBACK, StackError

DEPLOY_SUBDIR = Path("deploy/local/kafka")
NODE_ID = 1
MIN_JAVA = 17
PORT_ENV = "NGINX_KPI_KAFKA_PORT"
MARKER = ".complete"
MVN_TIMEOUT = 900.0
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"


def pom_kafka_version(pom: Path) -> str:
    """The Kafka version pinned by the kafka.version property of the fetch pom."""
    try:
        root = ET.parse(pom).getroot()  # noqa: S314 - our own checked-in file
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read the Kafka version from {pom}: {exc}") from exc
    node = root.find(f"{_POM_NS}properties/{_POM_NS}kafka.version")
    if node is None or not (node.text or "").strip():
        raise StackError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format: 16 bytes, URL-safe base64 without padding."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own Uuid.randomUuid() rejects ids starting with '-': they look like CLI flags.
        if not cid.startswith("-"):
            return cid


def render_server_properties(template: str, *, broker_port: int, data_dir: Path) -> str:
    """Fill in the server.properties template for a combined broker+controller node."""
    return string.Template(template).substitute(
        node_id=NODE_ID,
        host=LOOPBACK,
        broker_port=broker_port,
        controller_port=broker_port + 1,
        log_dirs=str(data_dir),
    )


def mvn_error_summary(output: str) -> str:
    """The telling lines of a failed mvn run, without Maven's generic help footer."""
    footer = ("re-run maven", "to see the full stack trace", "for more information", "[help 1]")
    lines = []
    for raw in output.splitlines():
        line = procs.strip_ansi(raw).removeprefix("[ERROR]").strip()
        if line and not line.lower().startswith(footer):
            lines.append(line)
    return procs.one_line("\n".join(lines), lines=3, width=600)


def java_major_version(version_text: str) -> int | None:
    """The major version from `java -version` output ('1.8.0_x' -> 8, '17.0.9' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def broker_command(java: str, libs: Path, config: Path, log4j: Path, logs_dir: Path) -> list[str]:
    """The java command line that runs the broker (kafka.Kafka) with our config and logging."""
    return [
        java,
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(config),
    ]


def find_java() -> str:
    """Path of a java 17+ binary, or StackError telling how to get one."""
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found on PATH: install a JDK/JRE 17+ (apt-get install openjdk-17-jre-headless)"
        )
    out = procs.run_checked([java, "-version"], what="java -version", timeout=30)
    major = java_major_version(out)
    if major is not None and major < MIN_JAVA:
        raise StackError(f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA}+")
    return java


class KafkaNode:
    """The broker's files under <state_dir>/kafka and its detached java process."""

    def __init__(self, state_dir: Path, port: int, deploy_dir: Path | None) -> None:
        """Describe the node; nothing is touched until up()."""
        self.port = port
        self.deploy_dir = deploy_dir
        self.root = state_dir / "kafka"
        self.data = self.root / "data"
        self.logs = self.root / "logs"
        self.config = self.root / "server.properties"
        self.pid_file = self.root / "kafka.pid"
        self.out_log = self.logs / "kafka.out"
        self.server_log = self.logs / "server.log"
        self._launch: tuple[str, Path] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap.servers."""
        return f"{LOOPBACK}:{self.port}"

    def pid(self) -> int | None:
        """Pid of our running broker, or None (a stale or foreign pid does not count)."""
        pid = procs.read_pid(self.pid_file)
        if pid is None or not procs.pid_alive(pid):
            return None
        # After a reboot the pid may belong to some other program: check it is our broker.
        argv = procs.cmdline(pid)
        return pid if "kafka.Kafka" in argv and str(self.config) in argv else None

    def status(self) -> str:
        """'running (pid N) at host:port' or 'stopped'."""
        pid = self.pid()
        return f"running (pid {pid}) at {self.bootstrap}" if pid else "stopped"

    def prepare(self) -> None:
        """Unless running: check java and the ports, fetch the jars, render config, format storage."""
        if self.pid() is None:
            self._launch = self._prepare_launch()

    def start(self) -> None:
        """Launch the broker detached unless it is running (prepare() must have run)."""
        if self.pid() is not None:
            return
        java, libs = self._launch if self._launch is not None else self._prepare_launch()
        cmd = broker_command(java, libs, self.config, self._deploy() / "log4j2.yaml", self.logs)
        pid = procs.spawn_detached(cmd, log=self.out_log, cwd=self.root)
        self.pid_file.write_text(f"{pid}\n")

    def wait_ready(self, deadline: float) -> None:
        """Poll with an AdminClient until the broker lists itself in the metadata."""
        pid = self.pid()
        if pid is None:
            raise StackError(f"Kafka is not running; log {self.server_log}: {procs.tail(self.server_log)}")
        procs.wait_for(
            _MetadataProbe(self.bootstrap),
            deadline=deadline,
            what=f"Kafka at {self.bootstrap}",
            log=self.server_log,
            alive=lambda: procs.pid_alive(pid),
        )

    def up(self, deadline: float) -> None:
        """prepare(), start() and wait_ready() in one go."""
        self.prepare()
        self.start()
        self.wait_ready(deadline)

    def down(self, grace: float = 30.0) -> None:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after grace seconds."""
        pid = self.pid()
        if pid is not None:
            procs.terminate(pid, grace)
        self.pid_file.unlink(missing_ok=True)

    def clean(self) -> None:
        """Delete data, logs and config; keep the downloaded jars."""
        self.down()
        for path in (self.data, self.logs):
            shutil.rmtree(path, ignore_errors=True)
        self.config.unlink(missing_ok=True)

    def _prepare_launch(self) -> tuple[str, Path]:
        java = find_java()
        # Before mvn: a taken port should fail in a second, not after a download.
        procs.ensure_ports_free((self.port, self.port + 1), "Kafka", PORT_ENV)
        libs = self._ensure_jars()
        self._render_config()
        self._ensure_formatted(java, libs)
        return java, libs

    def _deploy(self) -> Path:
        if self.deploy_dir is None or not (self.deploy_dir / "pom.xml").is_file():
            raise StackError(
                f"cannot find {DEPLOY_SUBDIR}/pom.xml: run from a checkout of the nginx-kpi repository"
            )
        return self.deploy_dir

    def _ensure_jars(self) -> Path:
        """libs-<version>/ with the broker's runtime jars; mvn runs only when it is incomplete."""
        pom = self._deploy() / "pom.xml"
        libs = self.root / f"libs-{pom_kafka_version(pom)}"
        if (libs / MARKER).is_file():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("mvn not found on PATH: install Maven 3.6+ (apt-get install maven)")
        partial = libs.with_name(libs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(libs, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        procs.run_checked(
            cmd,
            what="fetching the Kafka jars with mvn",
            timeout=MVN_TIMEOUT,
            cwd=pom.parent,
            summarize=mvn_error_summary,
        )
        if not any(partial.glob("kafka_2.13-*.jar")):
            raise StackError(f"mvn finished but left no kafka_2.13 jar in {partial}")
        (partial / MARKER).write_text(f"fetched by mvn from {pom}\n")
        # Rename last, so an interrupted fetch never looks complete.
        partial.rename(libs)
        return libs

    def _render_config(self) -> None:
        template = (self._deploy() / "server.properties").read_text()
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_server_properties(template, broker_port=self.port, data_dir=self.data))

    def _ensure_formatted(self, java: str, libs: Path) -> None:
        """Format KRaft storage once; a half-formatted directory is wiped and formatted again."""
        if (self.data / "meta.properties").is_file():
            return
        shutil.rmtree(self.data, ignore_errors=True)
        cmd = [
            java,
            f"-Dlog4j2.configurationFile={self._deploy() / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.config),
        ]
        procs.run_checked(cmd, what="formatting Kafka storage (kafka.tools.StorageTool)", timeout=120)


class _MetadataProbe:
    """Callable readiness check: the broker accepts TCP and answers a metadata request."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.host, port = bootstrap.rsplit(":", 1)
        self.port = int(port)

    def __call__(self) -> bool:
        # Cheap check that the port is open yet, so librdkafka is not asked (and does not log
        # connection-refused noise) while the JVM is still booting.
        if not procs.port_in_use(self.port, self.host):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2.0)
        except KafkaException:
            # Timeout or transport failure: the broker is not serving metadata yet.
            return False
        return bool(metadata.brokers)
