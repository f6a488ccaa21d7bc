-- Attribution's ROI sums the cost reports (aggregate records without a person, such as an ad
-- platform's daily report rows) of one event name over a time range; person events never
-- enter this index, so the pipeline's inserts do not pay for it.
CREATE INDEX events_without_person_by_name
    ON modeling.events (tenant_id, event_name, event_time)
    WHERE person_id IS NULL;
