"""Docker-free local services for tests and the demo: a KRaft Kafka broker and a PostgreSQL cluster.

stack = LocalStack()          # state in ./.stack, Kafka on 19092, PostgreSQL on 15432
stack.up()                    # idempotent; then use stack.kafka_bootstrap / stack.postgres_dsn
stack.down()
"""

from nginx_kpi.localstack.procs import StackError
from nginx_kpi.localstack.stack import LocalStack

__all__ = ["LocalStack", "StackError"]
