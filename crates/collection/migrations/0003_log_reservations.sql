-- Sequence ranges reserved by appends still in flight. An append takes its
-- range from log_heads in a short statement of its own and stores its rows
-- in a second one that also deletes the reservation, so one tenant's appends
-- insert in parallel. Readers see a tenant's log only below its lowest range
-- still reserved, which keeps "sequences become visible in order" true.
CREATE TABLE collection.log_reservations (
    tenant_id      text        NOT NULL,
    first_sequence bigint      NOT NULL,
    last_sequence  bigint      NOT NULL,
    reserved_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, first_sequence)
);
