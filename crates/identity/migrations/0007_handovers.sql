-- Weak identifiers over time (see the identity crate's `timeline`): a value
-- handed over from one person to another (a recycled phone number) keeps who
-- held it before and since when, so events observed before the handover still
-- resolve to the previous holder. `last_seen_at` (kept to the day) is the last
-- use by the current holder, the evidence of a handover after a gap.

ALTER TABLE identity.identifiers
    ADD COLUMN held_since         timestamptz,
    ADD COLUMN previous_person_id uuid;
