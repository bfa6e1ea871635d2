"""docker-compose.yml without a Docker engine: what can be proved from the files themselves.

Compose accepts the file; every file it mounts or builds exists; and the names and ports agree between
the compose file, the Fluent Bit configs, the nginx config, the PostgreSQL init scripts, the CloudBeaver
provisioning, the Dockerfile and the project's own defaults. Every expected value is read from one of
those files, never repeated here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import psycopg
import pytest
import yaml

from nginx_kpi.parse import DEFAULT_PARSER, load_parser, parser_sections
from nginx_kpi.settings import Settings
from nginx_kpi.store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
FLUENT_BIT = ROOT / "deploy" / "fluent-bit"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init.sh"
GRANTS = ROOT / "deploy" / "postgres" / "grants.sql"
DATA_SOURCES = ROOT / "deploy" / "cloudbeaver" / "data-sources.json"
TRAFFIC = ROOT / "deploy" / "traffic" / "traffic.py"
DOCKERFILE = ROOT / "Dockerfile"

# A release, not a moving tag: major.minor at least (PostgreSQL's versions have two parts).
PINNED = re.compile(r"[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.-]+)?")
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


# ---------------------------------------------------------------------------------------------- helpers


def _default(field: str) -> Any:
    """A setting's default, whatever the environment of the test run says."""
    return Settings.model_fields[field].default


def env_example() -> dict[str, str]:
    """The variables of .env.example, as Compose reads them."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, value = match.group("op"), match.group("arg"), env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def _interpolated(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: _interpolated(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, env) for v in node]
    return node


@cache
def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written (anchors merged, variables not substituted)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose runs it with a .env made from .env.example."""
    return _interpolated(raw_compose(), env_example())  # type: ignore[no-any-return]


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]  # type: ignore[no-any-return]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def bind_mounts(name: str) -> dict[PurePosixPath, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for spec in service(name).get("volumes", []):
        source, target = spec.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[PurePosixPath(target)] = (ROOT / source).resolve()
    return mounts


def named_volume_mounts(name: str) -> dict[str, PurePosixPath]:
    """Volume name -> container path of a service's named volumes."""
    mounts = {}
    for spec in service(name).get("volumes", []):
        source, target = spec.split(":")[:2]
        if not source.startswith((".", "/")):
            mounts[source] = PurePosixPath(target)
    return mounts


def host_path(name: str, container_path: str) -> Path | None:
    """Where a path inside a service's container comes from on the host, if it is bind-mounted."""
    path = PurePosixPath(container_path)
    for target, source in bind_mounts(name).items():
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    return None


def published(name: str) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port) of a service."""
    ports = {}
    for spec in service(name).get("ports", []):
        address, host_port, container_port = str(spec).split(":")
        ports[int(container_port.split("/")[0])] = (address, int(host_port))
    return ports


def host_and_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def default_dsn() -> dict[str, Any]:
    return psycopg.conninfo.conninfo_to_dict(_default("dsn"))


def fluent_bit_config() -> dict[str, dict[str, str]]:
    """The sections of the classic fluent-bit.conf, by name (SERVICE, INPUT, OUTPUT); keys lower-cased."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in (FLUENT_BIT / "fluent-bit.conf").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]").upper(), {})
        else:
            key, _, value = line.partition(" ")
            current[key.lower()] = value.strip()
    return sections


def role_names() -> tuple[str, str]:
    """(writer, reader): the roles deploy/postgres/init.sh creates, in that order."""
    roles = re.findall(r"CREATE ROLE (\w+)", POSTGRES_INIT.read_text(encoding="utf-8"))
    assert len(roles) == 2, roles
    return roles[0], roles[1]


def cloudbeaver_connection() -> dict[str, Any]:
    connections = json.loads(DATA_SOURCES.read_text(encoding="utf-8"))["connections"]
    assert len(connections) == 1
    return next(iter(connections.values()))  # type: ignore[no-any-return]


def traffic_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nginx_kpi_traffic", TRAFFIC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def nginx_log_format(name: str) -> str:
    """The format string of `log_format NAME ...;` in deploy/nginx/nginx.conf, its quoted parts joined."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    match = re.search(rf"^\s*log_format\s+{name}\s+(.*?);", text, re.MULTILINE | re.DOTALL)
    assert match, f"no log_format {name} in {NGINX_CONF}"
    return "".join(re.findall(r"'([^']*)'", match.group(1)))


def nginx_locations() -> list[tuple[str, str, str]]:
    """(modifier, pattern, body) of every `location` block of nginx.conf, nested braces included."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"\blocation\s+(=|~\*?|\^~)?\s*(\S+)\s*\{", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        blocks.append((match.group(1) or "", match.group(2), text[match.end() : end - 1]))
    return blocks


def nginx_location_for(path: str) -> str:
    """The body of the location nginx picks for `path`: exact, then regex, then longest prefix."""
    blocks = nginx_locations()
    for modifier, pattern, body in blocks:
        if modifier == "=" and pattern == path:
            return body
    for modifier, pattern, body in blocks:
        if modifier.startswith("~") and re.search(pattern, path):
            return body
    prefixes = [(p, b) for m, p, b in blocks if m in ("", "^~") and path.startswith(p)]
    return max(prefixes, key=lambda pb: len(pb[0]))[1]


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) or `docker-compose` (v1), whichever works here."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)"
        )
    clean_env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        [*command, "--env-file", str(env_file), "--file", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ------------------------------------------------------------------------------------- compose itself


def test_docker_compose_accepts_the_file_with_the_example_env() -> None:
    result = run_compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = run_compose_config(empty)
    assert result.returncode != 0
    assert ".env" in result.stderr


def test_every_image_is_pinned_to_a_full_version() -> None:
    for name, svc in raw_compose()["services"].items():
        if "build" in svc:
            continue
        assert PINNED.fullmatch(svc["image"]), (name, svc["image"])
    for image in re.findall(r"^(?:ARG PYTHON_IMAGE=|FROM )(\S+)", DOCKERFILE.read_text(), re.MULTILINE):
        assert image.startswith("$") or PINNED.fullmatch(image), image


def test_every_mounted_file_and_build_context_exists() -> None:
    for name, svc in compose()["services"].items():
        for target, source in bind_mounts(name).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert ROOT in source.parents, f"{name}: {source} is outside the repository"
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_every_mounted_path_a_command_names_exists() -> None:
    checked = 0
    for name, svc in compose()["services"].items():
        words = [*svc.get("entrypoint", []), *svc.get("command", [])]
        for word in " ".join(str(w) for w in words).split():
            source = host_path(name, word.rstrip(";")) if word.startswith("/") else None
            if source is not None:
                assert source.is_file(), f"{name} runs {word}, which is not in the repository"
                checked += 1
    assert checked >= 4  # fluent-bit.conf, traffic.py, the render script and data-sources.json


def test_every_port_is_published_on_localhost_only() -> None:
    for name, svc in raw_compose()["services"].items():
        for spec in svc.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), (name, spec)


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name in raw_compose()["services"]:
        for key, value in (raw_compose()["services"][name].get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), (name, key, value)
    for line in DOCKERFILE.read_text().splitlines():
        assert not re.search("PASSWORD|SECRET", line, re.IGNORECASE), line


def test_the_env_file_stays_out_of_git_and_of_the_image() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [r for r in dockerignore if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "the build context is an allowlist"
    assert not [r for r in rules if r.startswith("!") and ".env" in r]


# --------------------------------------------------------------------------------------------- Kafka


def test_kafka_clients_use_the_containers_listener_and_the_default_topic() -> None:
    kafka_env = environment("kafka")
    advertised = dict(
        (listener.split("://")[0], listener.split("://")[1])
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    clients = ["fluent-bit", "kafka-init", "kpi-consumer"]
    for name in clients:
        env = environment(name)
        host, _port = host_and_port(env["NGINX_KPI_BROKERS"])
        assert host == "kafka" and host in compose()["services"]
        assert env["NGINX_KPI_BROKERS"] == advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        assert env["NGINX_KPI_TOPIC"] == _default("topic")
    assert environment("kpi-consumer")["NGINX_KPI_GROUP"] == _default("group")


def test_kafka_is_reachable_from_the_host_at_the_default_brokers() -> None:
    host, port = host_and_port(_default("brokers"))
    advertised = environment("kafka")["KAFKA_ADVERTISED_LISTENERS"].split(",")
    host_listener = next(listener for listener in advertised if listener.endswith(f"://{host}:{port}"))
    listener_name = host_listener.split("://")[0]
    bound = [listener for listener in environment("kafka")["KAFKA_LISTENERS"].split(",")]
    container_port = next(int(b.rsplit(":", 1)[1]) for b in bound if b.startswith(f"{listener_name}://"))
    assert published("kafka")[container_port] == ("127.0.0.1", port)


def test_the_topic_is_created_with_several_partitions_before_anyone_uses_it() -> None:
    init = service("kafka-init")
    assert init["command"] == ["topic", "create"]
    assert int(environment("kafka-init")["NGINX_KPI_PARTITIONS"]) >= 3
    assert environment("kafka")["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in service("kafka")
    for name in ("fluent-bit", "kpi-consumer"):
        assert service(name)["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_kafka_image_is_the_local_stacks_version() -> None:
    pom = (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match
    assert service("kafka")["image"] == f"apache/kafka:{match.group(1)}"


# ----------------------------------------------------------------------------------------- Fluent Bit


def test_fluent_bit_runs_the_projects_own_configs() -> None:
    config = host_path("fluent-bit", service("fluent-bit")["command"][-1])
    assert config == (FLUENT_BIT / "fluent-bit.conf").resolve()
    parsers_file = fluent_bit_config()["SERVICE"]["parsers_file"]
    assert (config.parent / parsers_file).is_file()
    assert host_path("fluent-bit", service("fluent-bit")["working_dir"]) == config.parent


def test_fluent_bit_configs_get_every_variable_they_read() -> None:
    env = environment("fluent-bit")
    for config in ("fluent-bit.conf", "fluent-bit.yaml"):
        names = set(re.findall(r"\$\{(\w+)\}", (FLUENT_BIT / config).read_text()))
        assert names == {"NGINX_ACCESS_LOG", "NGINX_KPI_BROKERS", "NGINX_KPI_TOPIC", "FLB_STATE_DIR"}
        assert names <= env.keys(), (config, names - env.keys())
    state = PurePosixPath(env["FLB_STATE_DIR"])
    assert state in named_volume_mounts("fluent-bit").values(), "positions and buffer must be on a volume"


def test_fluent_bit_uses_the_parser_the_project_parses_with() -> None:
    sections = parser_sections((FLUENT_BIT / "parsers.conf").read_text())
    assert fluent_bit_config()["INPUT"]["parser"] == DEFAULT_PARSER
    assert DEFAULT_PARSER in sections
    yaml_config = yaml.safe_load((FLUENT_BIT / "fluent-bit.yaml").read_text())
    assert yaml_config["pipeline"]["inputs"][0]["parser"] == DEFAULT_PARSER


def test_fluent_bit_image_is_the_version_the_fixtures_were_recorded_with() -> None:
    notes = (ROOT / "tests" / "fixtures" / "fluent-bit" / "NOTES.md").read_text()
    match = re.search(r"Fluent Bit \*\*v(\d+\.\d+\.\d+)\*\*", notes)
    assert match
    assert service("fluent-bit")["image"] == f"fluent/fluent-bit:{match.group(1)}"


# ---------------------------------------------------------------------------------------------- nginx


def test_nginx_writes_the_file_fluent_bit_tails() -> None:
    access_log = re.search(r"^\s*access_log\s+(\S+)\s+main;", NGINX_CONF.read_text(), re.MULTILINE)
    assert access_log, "nginx must log in the main format"
    log_path = PurePosixPath(access_log.group(1))
    nginx_volumes = named_volume_mounts("nginx")
    volume = next(v for v, target in nginx_volumes.items() if target == log_path.parent)
    tailed = PurePosixPath(environment("fluent-bit")["NGINX_ACCESS_LOG"])
    assert named_volume_mounts("fluent-bit")[volume] / log_path.name == tailed
    assert host_path("nginx", "/etc/nginx/nginx.conf") == NGINX_CONF.resolve()
    assert not log_path.is_relative_to("/var/log/nginx"), "the official image links that folder to stdout"


def test_a_line_in_nginx_main_format_parses_with_the_fluent_bit_parser() -> None:
    values = {
        "remote_addr": "203.0.113.7",
        "remote_user": "-",
        "time_local": "04/Dec/2026:19:58:01 +0000",
        "request": "GET /products.html?utm_source=newsletter HTTP/1.1",
        "status": "200",
        "body_bytes_sent": "612",
        "http_referer": "https://www.google.com/",
        "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "http_x_forwarded_for": "203.0.113.7",
    }
    line = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], nginx_log_format("main"))
    parsed = load_parser(FLUENT_BIT / "parsers.conf", DEFAULT_PARSER).parse(line)
    assert parsed is not None and parsed.epoch is not None, line
    assert parsed.fields["remote"] == values["remote_addr"]
    assert parsed.fields["method"] == "GET"
    assert parsed.fields["path"] == "/products.html?utm_source=newsletter"
    assert parsed.fields["code"] == values["status"]
    assert parsed.fields["size"] == values["body_bytes_sent"]
    assert parsed.fields["agent"] == values["http_user_agent"]
    assert parsed.fields["forwarded_for"] == values["http_x_forwarded_for"]


def test_traffic_reaches_the_nginx_service() -> None:
    target = environment("traffic")["TRAFFIC_TARGET"]
    assert target == "http://nginx"
    assert 80 in published("nginx")
    assert re.search(r"^\s*listen\s+80;", NGINX_CONF.read_text(), re.MULTILINE)
    assert host_path("traffic", service("traffic")["command"][-1]) == TRAFFIC.resolve()


def test_traffic_mix_matches_what_the_demo_site_answers() -> None:
    traffic = traffic_module()
    site = host_path("nginx", "/usr/share/nginx/html")
    assert site is not None
    statuses = set()
    for call in traffic.MIX:
        path = call.path.split("?")[0]
        statuses.add(call.expect)
        file = site / (path.lstrip("/") or "index.html")
        if call.expect in (200, 304, 405) and not path.startswith("/api/"):
            assert file.is_file(), call
        elif call.expect == 404 and not path.startswith("/api/"):
            assert not file.exists(), call
        else:
            body = nginx_location_for(path)
            assert re.search(rf"\breturn\s+{call.expect}\b", body), (call, body)
    assert {200, 201, 301, 302, 304, 401, 403, 404, 405, 500, 503} <= statuses
    assert {c.method for c in traffic.MIX} >= {"GET", "POST", "HEAD", "DELETE"}
    assert 1 / traffic.MAX_RATE >= 0.05, "the traffic must stay gentle"


# ----------------------------------------------------------------------------------------- PostgreSQL


def test_postgres_database_and_port_are_the_project_defaults() -> None:
    dsn = default_dsn()
    assert environment("postgres")["POSTGRES_DB"] == dsn["dbname"]
    assert published("postgres")[5432] == ("127.0.0.1", int(dsn["port"]))
    assert "healthcheck" in service("postgres")


def test_postgres_initialisation_runs_the_packaged_schema_then_the_grants() -> None:
    init_target = next(t for t, s in bind_mounts("postgres").items() if s == POSTGRES_INIT.resolve())
    assert init_target.parent == PurePosixPath("/docker-entrypoint-initdb.d") and init_target.suffix == ".sh"
    assert os.access(POSTGRES_INIT, os.X_OK), "the image sources a script that is not executable"
    script = POSTGRES_INIT.read_text()
    sql_dir = re.search(r"sql_dir=\$\{NGINX_KPI_SQL_DIR:-(\S+)\}", script)
    assert sql_dir
    includes = re.findall(r"\\i \$sql_dir/(\S+)", script)
    assert includes == ["schema.sql", "grants.sql"]
    schema = host_path("postgres", f"{sql_dir.group(1)}/schema.sql")
    assert schema == (ROOT / "src" / "nginx_kpi" / "schema.sql").resolve()
    assert f"'{SCHEMA_VERSION}'" in schema.read_text()
    assert host_path("postgres", f"{sql_dir.group(1)}/grants.sql") == GRANTS.resolve()
    for variable in re.findall(r"^\\+getenv \w+ (\w+)$", script, re.MULTILINE):
        assert variable in environment("postgres"), variable


def test_the_consumer_connects_as_the_writer_role_to_the_compose_database() -> None:
    writer, _ = role_names()
    env = environment("kpi-consumer")
    dsn = psycopg.conninfo.conninfo_to_dict(env["NGINX_KPI_DSN"])
    assert dsn["host"] == "postgres" and int(dsn["port"]) in published("postgres")
    assert dsn["dbname"] == environment("postgres")["POSTGRES_DB"]
    assert dsn["user"] == writer
    assert "password" not in dsn
    raw = raw_compose()["services"]
    assert (
        raw["kpi-consumer"]["environment"]["PGPASSWORD"]
        == raw["postgres"]["environment"]["NGINX_KPI_WRITER_PASSWORD"]
    )


def test_grants_name_exactly_the_roles_init_creates() -> None:
    granted = set(re.findall(r"\bTO ([\w, ]+);", GRANTS.read_text()))
    names = {n.strip() for group in granted for n in group.split(",")}
    assert names == set(role_names())
    statements = re.sub(r"--.*", "", GRANTS.read_text())
    assert "PASSWORD" not in statements.upper()


def test_the_consumer_can_scale_and_restarts_on_failure() -> None:
    consumer = service("kpi-consumer")
    assert "container_name" not in consumer and "ports" not in consumer
    assert consumer["restart"] == "on-failure"
    for dependency in ("kafka", "postgres"):
        assert consumer["depends_on"][dependency]["condition"] == "service_healthy"


# ---------------------------------------------------------------------------------------- CloudBeaver


def test_cloudbeaver_connection_points_at_the_compose_database_as_the_reader() -> None:
    _, reader = role_names()
    connection = cloudbeaver_connection()
    config = connection["configuration"]
    assert connection["provider"] == "postgresql"
    assert connection["read-only"] is True and connection["save-password"] is True
    assert config["host"] == "postgres" and "postgres" in compose()["services"]
    assert int(config["port"]) in published("postgres")
    assert config["database"] == environment("postgres")["POSTGRES_DB"]
    assert config["url"] == f"jdbc:postgresql://{config['host']}:{config['port']}/{config['database']}"
    assert config["user"] == reader
    # The password is a placeholder for the variable that also sets the reader's password in PostgreSQL.
    variable = re.fullmatch(r"\$\{(\w+)\}", config["password"])
    assert variable
    raw = raw_compose()["services"]
    assert (
        raw["cloudbeaver"]["environment"][variable.group(1)]
        == raw["postgres"]["environment"][variable.group(1)]
    )


def test_cloudbeaver_renders_the_provisioning_file_and_configures_itself() -> None:
    script = " ".join(service("cloudbeaver")["entrypoint"])
    render = re.search(r"(/\S+render-data-sources\.sh) (/\S+) (\S+);", script)
    assert render
    assert host_path("cloudbeaver", render.group(2)) == DATA_SOURCES.resolve()
    assert render.group(3) == "conf/initial-data-sources.conf"
    assert script.rstrip().endswith("exec ./launch-product.sh")
    env = environment("cloudbeaver")
    assert {"CB_SERVER_NAME", "CB_ADMIN_NAME", "CB_ADMIN_PASSWORD"} <= env.keys()
    assert env["CB_ADMIN_NAME"] not in ("admin", "user")
    assert service("cloudbeaver")["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_render_script_fills_in_any_password_as_valid_json(tmp_path: Path) -> None:
    target = tmp_path / "initial-data-sources.conf"
    password = 'p"a\\s&s $word'
    subprocess.run(
        ["bash", str(DATA_SOURCES.parent / "render-data-sources.sh"), str(DATA_SOURCES), str(target)],
        env={**os.environ, "NGINX_KPI_READER_PASSWORD": password},
        check=True,
    )
    rendered = json.loads(target.read_text())
    assert next(iter(rendered["connections"].values()))["configuration"]["password"] == password
    assert target.stat().st_mode & 0o077 == 0, "the rendered file holds a password"


# ------------------------------------------------------------------------------------------ Dockerfile


def _dockerfile_runs() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_installs_the_package_as_the_readme_and_make_install_do() -> None:
    makefile = (ROOT / "Makefile").read_text()
    make_install = re.search(r"pip install .*?'?(\.)(\[dev\])?'?\s*$", makefile, re.MULTILINE)
    assert make_install, "the Makefile installs the project directory with pip"
    readme_install = re.search(r"^pip install (\S+)$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert readme_install, "the README says how to install without make"
    installs = [re.search(r"pip install (.*?)(?:&&|$)", line) for line in _dockerfile_runs()]
    args = [m.group(1).split() for m in installs if m]
    assert args == [[make_install.group(1)]] == [[readme_install.group(1)]], (
        "one `pip install .`: pyproject.toml's pinned dependencies only"
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (script,) = pyproject["project"]["scripts"]
    assert f'ENTRYPOINT ["{script}"]' in _dockerfile_runs()


def test_dockerfile_is_multi_stage_slim_non_root_and_on_a_supported_python() -> None:
    lines = _dockerfile_runs()
    assert len([line for line in lines if line.startswith("FROM ")]) == 2
    image = re.search(r"PYTHON_IMAGE=python:(\d+)\.(\d+)\.\d+-slim", DOCKERFILE.read_text())
    assert image
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", requires)
    assert minimum
    assert (int(image.group(1)), int(image.group(2))) >= (int(minimum.group(1)), int(minimum.group(2)))
    user = [line for line in lines if line.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in ("0", "root")


def test_dockerfile_copies_everything_pip_needs_and_the_context_allows_it() -> None:
    copies = [
        line.split()[1:-1] for line in _dockerfile_runs() if line.startswith("COPY ") and "--from" not in line
    ]
    sources = {source.rstrip("/") for group in copies for source in group}
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "src"} <= sources
    # Package data that is a symbolic link (parsers.conf) needs its target in the build context too.
    for link in (ROOT / "src").rglob("*"):
        if link.is_symlink():
            target = link.resolve().relative_to(ROOT).as_posix()
            assert target in sources, f"{link} links to {target}, which the image would not have"
    allowed = {
        r[1:].rstrip("/") for r in (ROOT / ".dockerignore").read_text().splitlines() if r.startswith("!")
    }
    assert sources <= allowed


# -------------------------------------------------------------------------------------------- README


def test_readme_docker_section_names_every_service_and_published_port() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run with Docker", 1)[1].split("\n## ", 1)[0]
    for name in compose()["services"]:
        assert f"`{name}`" in section, name
        for _address, port in published(name).values():
            assert f":{port}" in section, (name, port)
    for variable in env_example():
        if variable.startswith("CB_ADMIN"):
            assert variable in section, variable
    assert "--scale kpi-consumer=" in section and "down -v" in section and "NGINX_KPI_LOG_DIR" in section
