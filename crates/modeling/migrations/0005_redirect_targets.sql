-- A merge re-points every redirect that pointed at an absorbed person; without this index
-- each merge scans all redirects, and applying a long run of merges grows quadratically.
CREATE INDEX person_redirects_to ON modeling.person_redirects (tenant_id, to_person);
