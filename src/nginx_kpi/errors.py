"""Errors a user can act on: the CLI prints their message on one line and exits non-zero."""


class NginxKpiError(Exception):
    """Base of every error that is reported to the user without a traceback."""

    exit_code = 1


class ConfigError(NginxKpiError):
    """A setting, flag or configuration file is wrong."""

    exit_code = 2


class InputError(NginxKpiError):
    """An input file cannot be read."""


class BrokerError(NginxKpiError):
    """Kafka cannot be reached or refused an operation."""


class DatabaseError(NginxKpiError):
    """PostgreSQL cannot be reached or refused an operation."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can span several), or its type."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
