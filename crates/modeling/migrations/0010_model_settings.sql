-- The tenant's settings of the per-person model outputs (lifecycle, RFM, churn), one row a
-- tenant, absent until first changed (the defaults apply until then). `settings` holds only
-- what callers set, as JSON; the revision is the etag: every change adds one, and a change
-- naming an older revision is refused.
CREATE TABLE modeling.model_settings (
    tenant_id   text        NOT NULL PRIMARY KEY,
    settings    jsonb       NOT NULL,
    revision    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Updates already applied, by the caller's request id, so a retried update answers with the
-- settings it stored instead of applying twice. Kept a day.
CREATE TABLE modeling.model_settings_requests (
    tenant_id   text        NOT NULL,
    request_id  text        NOT NULL,
    revision    bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX model_settings_requests_at ON modeling.model_settings_requests (created_at);
