-- Counters of stored events and distinct persons, kept by triggers as events are stored,
-- restated, moved between persons (merges, splits) and deleted (retractions, erasure), so
-- CountEvents reads a handful of rows instead of scanning the store.
--
-- dim 0: per channel; 1: per canonical event name; 2: the tenant's totals (key '').

-- How many events of each person fall under each key: a key's person count is the number
-- of its rows here. Events without a person are counted in the totals only.
CREATE TABLE modeling.person_event_counts (
    tenant_id  text     NOT NULL,
    dim        smallint NOT NULL,
    key        text     NOT NULL,
    person_id  uuid     NOT NULL,
    events     bigint   NOT NULL,
    PRIMARY KEY (tenant_id, dim, key, person_id)
);

CREATE TABLE modeling.event_counters (
    tenant_id  text     NOT NULL,
    dim        smallint NOT NULL,
    key        text     NOT NULL,
    events     bigint   NOT NULL,
    persons    bigint   NOT NULL,
    PRIMARY KEY (tenant_id, dim, key)
);

-- Applies signed event deltas (n = +1 stored, -1 removed) to both tables, in one statement
-- (its data-modifying parts `kept` and `gone` run whether or not the last part reads them):
-- each person's count under a key is read before and written after, and a key's person
-- count moves by the persons who appear under it or leave it. Every writer of
-- modeling.events holds the tenant's lock, so no two of these run for one tenant at once.
CREATE FUNCTION modeling.count_delta(
    t text[], p uuid[], c text[], e text[], n int[]
) RETURNS void LANGUAGE sql AS $$
    WITH delta AS (
        SELECT r.t AS tenant_id, d.dim, d.key, r.p AS person_id, sum(r.n) AS n
          FROM unnest(t, p, c, e, n) AS r(t, p, c, e, n),
               LATERAL (VALUES (0::smallint, r.c), (1::smallint, r.e), (2::smallint, ''))
                 AS d(dim, key)
         GROUP BY 1, 2, 3, 4
        HAVING sum(r.n) <> 0
    ), before AS (
        SELECT d.tenant_id, d.dim, d.key, d.person_id, d.n,
               COALESCE(pc.events, 0) AS old_events
          FROM delta d
          LEFT JOIN modeling.person_event_counts pc
            ON pc.tenant_id = d.tenant_id AND pc.dim = d.dim AND pc.key = d.key
           AND pc.person_id = d.person_id
         WHERE d.person_id IS NOT NULL
    ), kept AS (
        INSERT INTO modeling.person_event_counts AS pc (tenant_id, dim, key, person_id, events)
        SELECT tenant_id, dim, key, person_id, old_events + n FROM before
         WHERE old_events + n > 0
        ON CONFLICT (tenant_id, dim, key, person_id) DO UPDATE SET events = EXCLUDED.events
    ), gone AS (
        DELETE FROM modeling.person_event_counts pc
         USING before b
         WHERE pc.tenant_id = b.tenant_id AND pc.dim = b.dim AND pc.key = b.key
           AND pc.person_id = b.person_id AND b.old_events + b.n <= 0
    ), persons AS (
        SELECT tenant_id, dim, key,
               sum(CASE WHEN old_events = 0 AND old_events + n > 0 THEN 1
                        WHEN old_events > 0 AND old_events + n <= 0 THEN -1
                        ELSE 0 END) AS persons
          FROM before GROUP BY 1, 2, 3
    ), events AS (
        SELECT tenant_id, dim, key, sum(n) AS events FROM delta GROUP BY 1, 2, 3
    )
    INSERT INTO modeling.event_counters AS ec (tenant_id, dim, key, events, persons)
    SELECT ev.tenant_id, ev.dim, ev.key, ev.events, COALESCE(pe.persons, 0)
      FROM events ev
      LEFT JOIN persons pe USING (tenant_id, dim, key)
    ON CONFLICT (tenant_id, dim, key) DO UPDATE
       SET events = ec.events + EXCLUDED.events, persons = ec.persons + EXCLUDED.persons;
$$;

CREATE FUNCTION modeling.count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM modeling.count_delta(array_agg(tenant_id), array_agg(person_id),
                                 array_agg(channel), array_agg(event_name), array_agg(1))
       FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION modeling.count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM modeling.count_delta(array_agg(tenant_id), array_agg(person_id),
                                 array_agg(channel), array_agg(event_name), array_agg(-1))
       FROM old_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION modeling.count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM modeling.count_delta(array_agg(tenant_id), array_agg(person_id),
                                 array_agg(channel), array_agg(event_name), array_agg(n))
       FROM (SELECT tenant_id, person_id, channel, event_name, -1 AS n FROM old_rows
             UNION ALL
             SELECT tenant_id, person_id, channel, event_name, 1 FROM new_rows) r;
    RETURN NULL;
END $$;

CREATE TRIGGER events_counted_on_insert AFTER INSERT ON modeling.events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION modeling.count_inserted();
CREATE TRIGGER events_counted_on_delete AFTER DELETE ON modeling.events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION modeling.count_deleted();
CREATE TRIGGER events_counted_on_update AFTER UPDATE ON modeling.events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION modeling.count_updated();

-- The events stored before this migration.
SELECT modeling.count_delta(array_agg(tenant_id), array_agg(person_id),
                            array_agg(channel), array_agg(event_name), array_agg(1))
  FROM modeling.events;
