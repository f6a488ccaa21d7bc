-- Aggregate records (an ad platform's daily report row) carry no identifier and belong to no
-- person; they are stored for attribution's spend and reach, with no person.
ALTER TABLE modeling.events ALTER COLUMN person_id DROP NOT NULL;
