-- Source registry, ingest counters and file imports.

-- Which source settings, file and row an event came in under. Existing rows
-- predate the registry and count as unregistered (revision 0).
ALTER TABLE collection.raw_events
    ADD COLUMN source_revision bigint NOT NULL DEFAULT 0,
    ADD COLUMN file_import     text,
    ADD COLUMN import_row      bigint;

-- The current state of each source; the settings themselves live in the
-- immutable revisions below.
CREATE TABLE collection.sources (
    tenant_id   text        NOT NULL,
    source_id   text        NOT NULL,
    revision    bigint      NOT NULL,
    kind        integer     NOT NULL,
    -- touchline.collection.v1.SourceState
    state       integer     NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, source_id)
);

-- Every revision of every source, never changed once written: raw events
-- name the revision they were received under.
CREATE TABLE collection.source_revisions (
    tenant_id   text        NOT NULL,
    source_id   text        NOT NULL,
    revision    bigint      NOT NULL,
    -- touchline.collection.v1.Source as of this revision (protobuf encoding)
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source_id, revision)
);

-- Results of writes carrying a request id, so a retry returns the first
-- answer. Rows older than a day may be purged.
CREATE TABLE collection.idempotent_requests (
    tenant_id   text        NOT NULL,
    operation   text        NOT NULL,
    request_id  text        NOT NULL,
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, operation, request_id)
);

-- What arrived per source and UTC hour of receipt, written in the same
-- transaction as the events counted.
CREATE TABLE collection.ingest_counts (
    tenant_id  text        NOT NULL,
    hour       timestamptz NOT NULL,
    source     text        NOT NULL,
    accepted   bigint      NOT NULL DEFAULT 0,
    duplicates bigint      NOT NULL DEFAULT 0,
    rejected   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, source)
);

-- File imports; `received_bytes` is the offset up to which every row has
-- been committed, moved in the same transaction as those rows.
CREATE TABLE collection.imports (
    tenant_id            text        NOT NULL,
    import_id            text        NOT NULL,
    source_id            text        NOT NULL,
    source_revision      bigint      NOT NULL,
    format               integer     NOT NULL,
    file_name            text        NOT NULL,
    size_bytes           bigint      NOT NULL,
    sha256               text        NOT NULL,
    -- touchline.collection.v1.ImportState
    state                integer     NOT NULL,
    received_bytes       bigint      NOT NULL DEFAULT 0,
    rows_processed       bigint      NOT NULL DEFAULT 0,
    rows_accepted        bigint      NOT NULL DEFAULT 0,
    rows_duplicate       bigint      NOT NULL DEFAULT 0,
    rows_rejected        bigint      NOT NULL DEFAULT 0,
    error                text        NOT NULL DEFAULT '',
    -- touchline.collection.v1.CsvOptions in effect (protobuf encoding)
    csv_options          bytea       NOT NULL,
    -- the CSV header once read, so a resumed upload maps columns the same way
    header               text[],
    creator              text        NOT NULL,
    resume_token         text        NOT NULL,
    create_time          timestamptz NOT NULL DEFAULT now(),
    update_time          timestamptz NOT NULL DEFAULT now(),
    upload_complete_time timestamptz,
    complete_time        timestamptz,
    PRIMARY KEY (tenant_id, import_id)
);
CREATE INDEX imports_by_time ON collection.imports (tenant_id, create_time DESC, import_id);

-- One outcome per row of an import.
CREATE TABLE collection.import_rows (
    tenant_id   text    NOT NULL,
    import_id   text    NOT NULL,
    row_number  bigint  NOT NULL,
    byte_offset bigint  NOT NULL,
    -- touchline.collection.v1.ImportRowStatus
    status      integer NOT NULL,
    message_id  text    NOT NULL,
    sequence    bigint  NOT NULL DEFAULT 0,
    -- [{field, reason, description}] for rejected rows
    violations  jsonb,
    raw         text,
    PRIMARY KEY (tenant_id, import_id, row_number)
);
