"""python -m nginx_kpi.localstack up|down|status|clean — manage the local Kafka + PostgreSQL stack."""

from __future__ import annotations

import argparse
import sys

from nginx_kpi.localstack import LocalStack, StackError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nginx_kpi.localstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "clean"])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (up)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; print a one-line error and return 1 on StackError."""
    args = _parser().parse_args(argv)
    try:
        stack = LocalStack()
        if args.command == "up":
            stack.up(timeout=args.timeout)
        elif args.command == "down":
            stack.down()
        elif args.command == "clean":
            stack.clean()
        for name, state in stack.status().items():
            print(f"{name:9} {state}")
        if args.command == "up":
            print(f"bootstrap {stack.kafka_bootstrap}\ndsn       {stack.postgres_dsn}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
