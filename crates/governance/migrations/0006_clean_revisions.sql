-- A raw event can be published more than once: reprocessing in APPLY mode
-- appends a restating record when its clean content changed, or a retraction
-- when it now fails a rule, and a retracted event can be released again.
-- Each publication of a raw event is a revision of it, the first being 0.
ALTER TABLE governance.clean_events
    ADD COLUMN revision  integer NOT NULL DEFAULT 0,
    ADD COLUMN retracted boolean NOT NULL DEFAULT false;
DROP INDEX governance.clean_events_raw_sequence;
CREATE UNIQUE INDEX clean_events_raw_revision
    ON governance.clean_events (tenant_id, raw_sequence, revision);
