-- Triggers on model outputs (lifecycle stage, RFM segment, churn flag) compare each person's
-- outputs with the ones last seen, kept here; a tenant's first look only records them
-- (`model_state_baselines`), so turning the feature on does not announce every person.
CREATE TABLE modeling.person_model_states (
    tenant_id        text             NOT NULL,
    person_id        uuid             NOT NULL,
    lifecycle_stage  smallint         NOT NULL,
    rfm_segment      smallint         NOT NULL,
    churned          boolean          NOT NULL,
    churn_score      double precision,
    PRIMARY KEY (tenant_id, person_id)
);

CREATE TABLE modeling.model_state_baselines (
    tenant_id       text        NOT NULL PRIMARY KEY,
    established_at  timestamptz NOT NULL DEFAULT now()
);

-- What a model-output trigger says besides its type: the value before and after (stage or
-- RFM segment numbers of the contract) and the churn score.
ALTER TABLE modeling.triggers
    ADD COLUMN previous_value smallint NOT NULL DEFAULT 0,
    ADD COLUMN current_value  smallint NOT NULL DEFAULT 0,
    ADD COLUMN churn_score    double precision;
