-- nginx-kpi schema. Idempotent: `nginx-kpi db init` and every `consume` start run it.

CREATE TABLE IF NOT EXISTS kpis (
    kpi_key    text        NOT NULL,
    kpi_value  text        NOT NULL,
    vcount     bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kpi_key, kpi_value)
);

-- Members already counted by a distinct-count KPI (unique_visitors_per_day: one row per day and
-- client address), so that a visitor seen again, in another batch or by another consumer, is not
-- counted twice.
CREATE TABLE IF NOT EXISTS kpi_distinct_members (
    kpi_key   text NOT NULL,
    kpi_value text NOT NULL,
    member    text NOT NULL,
    PRIMARY KEY (kpi_key, kpi_value, member)
);

-- The next Kafka offset to read per partition, written in the same transaction as the KPI deltas:
-- this table, not Kafka's own group offsets, is what makes the counts exactly-once.
-- next_offset -2 means "from the beginning" (librdkafka's OFFSET_BEGINNING).
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Every record that was not counted, with its raw text and the reason.
CREATE TABLE IF NOT EXISTS rejected_records (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    raw             text        NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX IF NOT EXISTS rejected_records_reason ON rejected_records (reason);

-- Read by store.init_schema: a database at this version is left as it is.
COMMENT ON TABLE kpis IS 'nginx-kpi schema 1';

-- Typed views for people who query with SQL or CloudBeaver.
CREATE OR REPLACE VIEW requests_per_minute AS
    SELECT (kpi_value || ':00+00')::timestamptz AS minute, vcount AS requests
    FROM kpis WHERE kpi_key = 'requests_per_minute';

CREATE OR REPLACE VIEW requests_per_hour AS
    SELECT (kpi_value || ':00:00+00')::timestamptz AS hour, vcount AS requests
    FROM kpis WHERE kpi_key = 'requests_per_hour';

CREATE OR REPLACE VIEW requests_per_day AS
    SELECT kpi_value::date AS day, vcount AS requests
    FROM kpis WHERE kpi_key = 'requests_per_day';

CREATE OR REPLACE VIEW status_class_per_minute AS
    SELECT (split_part(kpi_value, '|', 1) || ':00+00')::timestamptz AS minute,
           split_part(kpi_value, '|', 2) AS status_class, vcount AS requests
    FROM kpis WHERE kpi_key = 'status_class_per_minute';

CREATE OR REPLACE VIEW bytes_per_hour AS
    SELECT (kpi_value || ':00:00+00')::timestamptz AS hour, vcount AS bytes
    FROM kpis WHERE kpi_key = 'bytes_per_hour';

CREATE OR REPLACE VIEW unique_visitors_per_day AS
    SELECT kpi_value::date AS day, vcount AS visitors
    FROM kpis WHERE kpi_key = 'unique_visitors_per_day';
