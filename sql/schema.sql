-- strata reference data: the slowly changing tables Debezium captures.
-- Loaded by scripts/stack into the database "strata" (idempotent).

CREATE TABLE IF NOT EXISTS users (
    id          bigint PRIMARY KEY,
    name        text        NOT NULL,
    email       text        NOT NULL,
    country     char(2)     NOT NULL,
    segment     text        NOT NULL DEFAULT 'standard',   -- standard|silver|gold|platinum
    risk_tier   smallint    NOT NULL DEFAULT 1 CHECK (risk_tier BETWEEN 1 AND 5),
    bio         text,                                      -- large: stored out of line (TOAST)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS merchants (
    id          bigint PRIMARY KEY,
    name        text             NOT NULL,
    category    text             NOT NULL,                 -- e.g. grocery, electronics
    mcc         smallint         NOT NULL,                 -- ISO 18245 merchant category code
    country     char(2)          NOT NULL,
    risk_score  double precision NOT NULL DEFAULT 0.1 CHECK (risk_score BETWEEN 0 AND 1),
    updated_at  timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS items (
    id          bigint PRIMARY KEY,
    merchant_id bigint        NOT NULL REFERENCES merchants (id),
    title       text          NOT NULL,
    category    text          NOT NULL,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    description text,
    updated_at  timestamptz   NOT NULL DEFAULT now()
);

-- TOAST: keep bio out of line even when short-ish, so that an update that
-- does not touch it sends Debezium's unchanged-value placeholder.
ALTER TABLE users ALTER COLUMN bio SET STORAGE EXTERNAL;

-- The connector's heartbeat.action.query updates this row every heartbeat
-- interval. Its change events carry real commit times in WAL order, so they
-- advance strata's CDC watermark while the reference tables are idle.
CREATE TABLE IF NOT EXISTS strata_heartbeat (
    id  smallint PRIMARY KEY,
    ts  timestamptz NOT NULL
);

-- Debezium (pgoutput) reads this publication; the connector does not create it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'strata_pub') THEN
        CREATE PUBLICATION strata_pub FOR TABLE users, merchants, items, strata_heartbeat;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_publication_tables
                      WHERE pubname = 'strata_pub' AND tablename = 'strata_heartbeat') THEN
        ALTER PUBLICATION strata_pub ADD TABLE strata_heartbeat;
    END IF;
END $$;
