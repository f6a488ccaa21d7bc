-- Jobs that clean a received-time range of raw events again under a
-- dictionary version and record how the outcome differs.
CREATE TABLE governance.reprocess_jobs (
    tenant_id          text        NOT NULL,
    job_id             text        NOT NULL,
    -- ReprocessJobState: 1 pending, 2 running, 3 succeeded, 4 failed
    state              smallint    NOT NULL DEFAULT 1,
    -- ReprocessMode: 1 dry run, 2 apply
    mode               smallint    NOT NULL,
    range_start        timestamptz NOT NULL,
    range_end          timestamptz NOT NULL,
    sources            text[]      NOT NULL DEFAULT '{}',
    dictionary_version bigint      NOT NULL,
    total_events       bigint      NOT NULL DEFAULT 0,
    examined_events    bigint      NOT NULL DEFAULT 0,
    -- touchline.governance.v1.ReprocessDiff (protobuf encoding)
    diff               bytea,
    error              text        NOT NULL DEFAULT '',
    creator            text        NOT NULL,
    request_id         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    PRIMARY KEY (tenant_id, job_id)
);
CREATE UNIQUE INDEX reprocess_jobs_request ON governance.reprocess_jobs (tenant_id, request_id)
    WHERE request_id IS NOT NULL;
