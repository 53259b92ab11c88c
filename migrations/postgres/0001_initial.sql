-- Switchboard schema, PostgreSQL. The SQLite twin lives in ../sqlite and must
-- stay equivalent: same tables, columns and constraints; money is NUMERIC
-- here and canonical decimal TEXT there; instants are TIMESTAMPTZ here and
-- integer milliseconds there. Later migrations only add.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE admins (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE tariffs (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    currency          TEXT NOT NULL,
    setup_fee         NUMERIC(24, 6) NOT NULL,
    price_per_minute  NUMERIC(24, 6) NOT NULL,
    minimum_seconds   INTEGER NOT NULL CHECK (minimum_seconds >= 0),
    increment_seconds INTEGER NOT NULL CHECK (increment_seconds >= 1),
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE app_servers (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    uri               TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    weight            INTEGER NOT NULL CHECK (weight >= 0),
    enabled           BOOLEAN NOT NULL,
    health            TEXT NOT NULL DEFAULT 'unknown',
    health_changed_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE clients (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    realm        TEXT NOT NULL,
    ha1_md5      TEXT NOT NULL,
    ha1_sha256   TEXT NOT NULL,
    display_name TEXT,
    enabled      BOOLEAN NOT NULL,
    tariff_id    TEXT REFERENCES tariffs (id) ON DELETE RESTRICT,
    max_sessions INTEGER CHECK (max_sessions >= 0),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX clients_tariff_idx ON clients (tariff_id);

CREATE TABLE services (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    strategy             TEXT NOT NULL,
    tariff_id            TEXT REFERENCES tariffs (id) ON DELETE RESTRICT,
    ring_timeout_seconds INTEGER CHECK (ring_timeout_seconds > 0),
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX services_tariff_idx ON services (tariff_id);

-- A service's pool; position keeps the order the operator gave.
CREATE TABLE service_app_servers (
    service_id    TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    app_server_id TEXT NOT NULL REFERENCES app_servers (id) ON DELETE RESTRICT,
    position      INTEGER NOT NULL,
    PRIMARY KEY (service_id, app_server_id)
);
CREATE INDEX service_app_servers_as_idx ON service_app_servers (app_server_id);

CREATE TABLE rules (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    priority    INTEGER NOT NULL,
    enabled     BOOLEAN NOT NULL,
    match_json  TEXT NOT NULL,
    service_id  TEXT NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
    set_json    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX rules_service_idx ON rules (service_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    app_server_id TEXT REFERENCES app_servers (id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

-- Nodes sharing this database, with the last moment each was known alive
-- (sessions left open by a node that died are closed up to that moment).
CREATE TABLE nodes (
    name       TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);

CREATE TABLE registrations (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    aor         TEXT NOT NULL,
    contact     TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT,
    node        TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX registrations_client_idx ON registrations (client_id);
CREATE INDEX registrations_expires_idx ON registrations (expires_at);

-- Sessions keep plain ids of clients, services and app servers (no foreign
-- keys): they are history and outlive the configuration they used.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    request_id     TEXT NOT NULL,
    state          TEXT NOT NULL,
    client_id      TEXT,
    service_id     TEXT,
    rule_id        TEXT,
    app_server_id  TEXT,
    caller_uri     TEXT NOT NULL,
    callee_uri     TEXT NOT NULL,
    client_call_id TEXT NOT NULL,
    as_call_id     TEXT,
    node           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    answered_at    TIMESTAMPTZ,
    ended_at       TIMESTAMPTZ,
    duration_ms    BIGINT,
    end_reason     TEXT,
    final_status   INTEGER
);
CREATE INDEX sessions_state_idx ON sessions (state);
CREATE INDEX sessions_client_idx ON sessions (client_id);
CREATE INDEX sessions_created_idx ON sessions (created_at);
CREATE INDEX sessions_request_idx ON sessions (request_id);

CREATE TABLE session_legs (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    app_server_id TEXT,
    call_id       TEXT NOT NULL,
    local_tag     TEXT,
    remote_tag    TEXT,
    remote_uri    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE INDEX session_legs_session_idx ON session_legs (session_id);

-- Billing segments: one per AS that served the session.
CREATE TABLE session_segments (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    segment       INTEGER NOT NULL,
    service_id    TEXT,
    app_server_id TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    PRIMARY KEY (session_id, segment)
);

CREATE TABLE session_events (
    seq        BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX session_events_session_idx ON session_events (session_id);

-- seq is assigned at insert and is the billing systems' cursor: it never
-- goes backwards, unlike wall-clock time.
CREATE TABLE cdrs (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    session_id      TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    segment         INTEGER NOT NULL,
    client_id       TEXT,
    service_id      TEXT,
    app_server_id   TEXT,
    caller_uri      TEXT NOT NULL,
    callee_uri      TEXT NOT NULL,
    client_call_id  TEXT NOT NULL,
    as_call_id      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    answered_at     TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ NOT NULL,
    duration_ms     BIGINT NOT NULL,
    billed_seconds  BIGINT NOT NULL,
    tariff_id       TEXT,
    amount          NUMERIC(24, 6) NOT NULL,
    currency        TEXT,
    end_reason      TEXT NOT NULL,
    final_status    INTEGER,
    node            TEXT NOT NULL,
    UNIQUE (session_id, segment)
);
CREATE INDEX cdrs_ended_idx ON cdrs (ended_at);
CREATE INDEX cdrs_client_idx ON cdrs (client_id);
CREATE INDEX cdrs_service_idx ON cdrs (service_id);

CREATE TABLE charges (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    session_id      TEXT NOT NULL,
    app_server_id   TEXT,
    client_id       TEXT,
    amount          NUMERIC(24, 6) NOT NULL,
    currency        TEXT NOT NULL,
    description     TEXT,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    source          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (session_id, idempotency_key)
);
CREATE INDEX charges_created_idx ON charges (created_at);
