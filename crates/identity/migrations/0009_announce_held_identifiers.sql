-- Readers of the change log learn who holds which identifier from LINK changes, which were
-- added after identifiers had been linked for a while. Those earlier links were never
-- announced: each person who holds identifiers now gets one LINK change naming all of them,
-- after the tenant's newest change, in person order (oldest first). A reader that already
-- knows a link takes the repeated announcement as no change.
WITH held AS (
    SELECT tenant_id, person_id,
           jsonb_agg(jsonb_build_object('id_type', id_type, 'scope', id_scope, 'value', id_value)
                     ORDER BY id_type, id_scope, id_value) AS moved
      FROM identity.identifiers
     GROUP BY tenant_id, person_id
), numbered AS (
    SELECT held.tenant_id, held.person_id, held.moved,
           COALESCE(heads.last_sequence, 0)
             + row_number() OVER (PARTITION BY held.tenant_id ORDER BY held.person_id) AS sequence
      FROM held LEFT JOIN identity.change_heads heads ON heads.tenant_id = held.tenant_id
), announced AS (
    INSERT INTO identity.changes (tenant_id, sequence, kind, person_id, moved, change_time)
    SELECT tenant_id, sequence, 'link', person_id, moved, now() FROM numbered
    RETURNING tenant_id, sequence
)
INSERT INTO identity.change_heads (tenant_id, last_sequence)
SELECT tenant_id, max(sequence) FROM announced GROUP BY tenant_id
ON CONFLICT (tenant_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, updated_at = now();
