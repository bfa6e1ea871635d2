-- Least privilege for the two roles of the Docker stack, in the database that holds the nginx-kpi schema.
-- No passwords here: deploy/postgres/init.sh creates the roles with passwords from the environment, then
-- runs src/nginx_kpi/schema.sql and this file as the superuser that owns the objects. The integration test
-- tests/integration/test_postgres_roles.py applies both files to the local PostgreSQL.
--
--   nginx_kpi_writer  the consumer (`nginx-kpi consume`): exactly what nginx_kpi.store runs, no DDL.
--                     store.init_schema only reads the schema version (COMMENT ON TABLE kpis) and, finding
--                     it current, runs no DDL; stored_offsets and commit_batch read and write the tables.
--   nginx_kpi_reader  CloudBeaver, dashboards, `nginx-kpi report`: reads the tables and views, nothing else.

DO $$
BEGIN
    -- Only the owner and the two roles connect; PUBLIC loses the default CONNECT and TEMPORARY.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO nginx_kpi_writer, nginx_kpi_reader', current_database());
END
$$;

-- PostgreSQL 15 and later already deny CREATE in schema public to PUBLIC; older servers do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO nginx_kpi_writer, nginx_kpi_reader;

-- Writer. SELECT is needed where a statement reads rows: the ON CONFLICT ... DO UPDATE on kpis reads
-- kpis.vcount, the INSERT ... RETURNING on kpi_distinct_members returns rows, and consumer_offsets is read
-- and compare-and-set with UPDATE ... WHERE next_offset = expected. rejected_records is only appended to.
-- No DELETE, TRUNCATE, REFERENCES or TRIGGER, and no access to the views.
GRANT SELECT, INSERT, UPDATE ON kpis, consumer_offsets TO nginx_kpi_writer;
GRANT SELECT, INSERT ON kpi_distinct_members TO nginx_kpi_writer;
GRANT INSERT ON rejected_records TO nginx_kpi_writer;

-- Reader: every table and view of the schema, and those created later by the role running this file.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO nginx_kpi_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO nginx_kpi_reader;
