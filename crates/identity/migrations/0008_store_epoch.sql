-- A random id of this database, made once when the schema is created. The identity cache
-- keys its entries under it, so entries written against another database (one dropped and
-- created again, a fresh test or demo database on a Redis that kept the old entries) are
-- never read: their person ids do not exist here.
CREATE TABLE identity.store_epoch (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     uuid    NOT NULL
);
INSERT INTO identity.store_epoch (epoch) VALUES (gen_random_uuid());
