-- Every change to a tenant's stored events gets a revision, so the in-memory projection the
-- journey models read can catch up with the store by reading what changed since the
-- revision it last applied, instead of rebuilding.
--
-- Revisions come from one sequence and are drawn while the writer holds the tenant's lock
-- (every writer of modeling.events does, see count_delta), so within a tenant they increase
-- in commit order: a reader that sees revision r of a tenant has seen every smaller one.
CREATE SEQUENCE modeling.event_revisions AS bigint;

ALTER TABLE modeling.events ADD COLUMN revision bigint;
UPDATE modeling.events SET revision = nextval('modeling.event_revisions');
ALTER TABLE modeling.events
    ALTER COLUMN revision SET DEFAULT nextval('modeling.event_revisions'),
    ALTER COLUMN revision SET NOT NULL;
CREATE INDEX events_revision ON modeling.events (tenant_id, revision);

-- An updated row (a restatement, a merge or split moving it to another person) is a new
-- revision of the event.
CREATE FUNCTION modeling.revise_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('modeling.event_revisions');
    RETURN NEW;
END $$;

CREATE TRIGGER events_revised BEFORE UPDATE ON modeling.events
    FOR EACH ROW EXECUTE FUNCTION modeling.revise_event();

-- Where an event was before it was deleted or changed: the projection removes it from that
-- person (a changed row comes back through its new revision). Rows are kept a day; a
-- projection that fell further behind rebuilds from the store.
CREATE TABLE modeling.event_removals (
    tenant_id  text        NOT NULL,
    revision   bigint      NOT NULL,
    sequence   bigint      NOT NULL,
    person_id  uuid        NOT NULL,
    removed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, revision)
);
CREATE INDEX event_removals_at ON modeling.event_removals (removed_at);

CREATE FUNCTION modeling.record_removals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO modeling.event_removals (tenant_id, revision, sequence, person_id)
    SELECT tenant_id, nextval('modeling.event_revisions'), sequence, person_id
      FROM old_rows WHERE person_id IS NOT NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER events_removed_on_delete AFTER DELETE ON modeling.events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION modeling.record_removals();
CREATE TRIGGER events_removed_on_update AFTER UPDATE ON modeling.events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION modeling.record_removals();
