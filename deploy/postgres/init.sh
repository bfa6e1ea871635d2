#!/usr/bin/env bash
# PostgreSQL initialisation for docker-compose.yml, run once by the official postgres image when its data
# directory is empty (mounted into /docker-entrypoint-initdb.d/). As the superuser, in one transaction:
#   1. the roles nginx_kpi_writer (the consumer) and nginx_kpi_reader (CloudBeaver, dashboards), with the
#      passwords NGINX_KPI_WRITER_PASSWORD and NGINX_KPI_READER_PASSWORD from the environment (.env);
#   2. the schema, from src/nginx_kpi/schema.sql, the very file the consumer ships (mounted, not copied);
#   3. the grants, from deploy/postgres/grants.sql.
# The consumer then finds the current schema version and runs no DDL (nginx_kpi.store.init_schema).
# tests/integration/test_postgres_roles.py runs this script against the local PostgreSQL.
set -euo pipefail

: "${POSTGRES_USER:?is not set}" "${POSTGRES_DB:?is not set}"
: "${NGINX_KPI_WRITER_PASSWORD:?is not set (see .env.example)}"
: "${NGINX_KPI_READER_PASSWORD:?is not set (see .env.example)}"
sql_dir=${NGINX_KPI_SQL_DIR:-/nginx-kpi}

# \getenv reads each password from the environment and :'name' quotes it as a literal: no password is
# ever on a command line or in a file, and any character is safe.
psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
\\getenv writer_password NGINX_KPI_WRITER_PASSWORD
\\getenv reader_password NGINX_KPI_READER_PASSWORD
BEGIN;
CREATE ROLE nginx_kpi_writer LOGIN PASSWORD :'writer_password';
CREATE ROLE nginx_kpi_reader LOGIN PASSWORD :'reader_password';
\\i $sql_dir/schema.sql
\\i $sql_dir/grants.sql
COMMIT;
SQL
