//! Trigger definitions through the real services: "dropped at purchase for a few seconds" is a
//! segment entry that comes when the time passes with no new event, a definition fires on it
//! once per person per day, and a second abandonment the same day is held back and counted.
//! Definitions are data (create, read, list, update with etags, delete), and bad ones name each
//! problem; a segment a definition fires on, or a definition a destination delivers, is not
//! deleted from under them.

use std::time::{Duration, Instant};

use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateSegmentRequest, CreateTriggerDefinitionRequest, CreateWebhookDestinationRequest,
    DeleteSegmentRequest, DeleteTriggerDefinitionRequest, DeleteWebhookDestinationRequest,
    EventMatcher, FrequencyCap, FunnelDefinition, FunnelDropOffCondition, FunnelStep,
    GetTriggerDefinitionRequest, ListTriggerDefinitionsRequest, Segment, SegmentRule,
    SubscribeTriggersRequest, Trigger, TriggerDefinition, TriggerType,
    UpdateTriggerDefinitionRequest, WebhookDestination, segment_rule,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "trigger-definitions";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:read",
    "segments:write",
    "activation:read",
    "activation:write",
];
/// How long a view must wait for its purchase before the person counts as dropped.
const IDLE_SECS: i64 = 4;

fn secs(n: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: n,
        nanos: 0,
    }
}

fn abandoned_rule() -> SegmentRule {
    let step = |name: &str| FunnelStep {
        label: String::new(),
        event: Some(EventMatcher {
            event_name: name.to_owned(),
            filters: Vec::new(),
        }),
    };
    SegmentRule {
        rule: Some(segment_rule::Rule::FunnelDropOff(FunnelDropOffCondition {
            funnel: Some(FunnelDefinition {
                steps: vec![step("view"), step("purchase")],
                conversion_window: Some(secs(86_400)),
                ..FunnelDefinition::default()
            }),
            step: 2,
            // Short, so a second attempt counts on its own once the first has aged out (a
            // person's best attempt in the window decides whether they dropped).
            within_last: Some(secs(IDLE_SECS + 2)),
            idle_for: Some(secs(IDLE_SECS)),
        })),
    }
}

fn definition_name(id: &str) -> String {
    format!("tenants/{TENANT}/triggerDefinitions/{id}")
}

fn once_a_day(segment: &str) -> TriggerDefinition {
    TriggerDefinition {
        display_name: "abandoned view / 浏览未购".to_owned(),
        r#type: TriggerType::SegmentEntered as i32,
        segment: format!("tenants/{TENANT}/segments/{segment}"),
        frequency_cap: Some(FrequencyCap {
            max_triggers: 1,
            period: Some(secs(86_400)),
        }),
        ..TriggerDefinition::default()
    }
}

/// Every trigger from the start of the log that `definitions` picks (the raw log when empty).
async fn triggers(modeling: &mut Modeling, definitions: &[&str]) -> anyhow::Result<Vec<Trigger>> {
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            trigger_definitions: definitions.iter().map(|d| definition_name(d)).collect(),
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
    Ok(match first {
        Ok(batch) => batch?.map(|b| b.triggers).unwrap_or_default(),
        Err(_) => Vec::new(),
    })
}

async fn until(
    modeling: &mut Modeling,
    what: &str,
    definitions: &[&str],
    wanted: impl Fn(&[Trigger]) -> bool,
) -> anyhow::Result<Vec<Trigger>> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = triggers(modeling, definitions).await?;
        if wanted(&got) {
            return Ok(got);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: {got:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandonment_fires_its_definition_once_a_day_when_the_idle_time_passes()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "abandoned".to_owned(),
            segment: Some(Segment {
                display_name: "abandoned".to_owned(),
                rule: Some(abandoned_rule()),
                ..Segment::default()
            }),
            ..CreateSegmentRequest::default()
        })
        .await?;
    let created = modeling
        .create_trigger_definition(CreateTriggerDefinitionRequest {
            trigger_definition_id: "abandoned-once-a-day".to_owned(),
            trigger_definition: Some(once_a_day("abandoned")),
            ..CreateTriggerDefinitionRequest::default()
        })
        .await?
        .into_inner()
        .trigger_definition
        .unwrap_or_default();
    assert_eq!(created.name, definition_name("abandoned-once-a-day"));

    // A view now: not dropped yet, dropped once the idle time passes, with no event.
    let viewed_at = chrono::Utc::now().timestamp_millis();
    let stored = touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![sample_event("v1", 1, "view", viewed_at)],
    )
    .await?;
    let person = touchline_e2e::person_of(&stored, "v1");
    let id = ["abandoned-once-a-day"];
    let fired = until(&mut modeling, "the first abandonment fires", &id, |t| {
        !t.is_empty()
    })
    .await?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let trigger = &fired[0];
    assert_eq!(trigger.person_id, person);
    assert_eq!(trigger.r#type, TriggerType::SegmentEntered as i32);
    assert_eq!(trigger.trigger_definition, definition_name(id[0]));
    let at = trigger.trigger_time.unwrap_or_default();
    let fired_ms = at.seconds * 1_000 + i64::from(at.nanos) / 1_000_000;
    assert!(
        fired_ms >= viewed_at + IDLE_SECS * 1_000,
        "not before the idle time: viewed {viewed_at}, fired {fired_ms}"
    );

    // The person buys (exits), views again and abandons again: the raw log has the second
    // entry, the capped definition does not, and counts it held back.
    let now = chrono::Utc::now().timestamp_millis();
    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![
            sample_event("p1", 1, "purchase", now),
            sample_event("v2", 1, "view", now + 1),
        ],
    )
    .await?;
    let entered = TriggerType::SegmentEntered as i32;
    let raw = until(&mut modeling, "the second abandonment", &[], |t| {
        t.iter().filter(|t| t.r#type == entered).count() == 2
    })
    .await?;
    assert!(raw.iter().all(|t| t.trigger_definition.is_empty()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let held_back = loop {
        let read = modeling
            .get_trigger_definition(GetTriggerDefinitionRequest {
                name: definition_name(id[0]),
            })
            .await?
            .into_inner()
            .trigger_definition
            .unwrap_or_default();
        if read.suppressed_count > 0 || Instant::now() > deadline {
            break read.suppressed_count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(held_back, 1);
    assert_eq!(triggers(&mut modeling, &id).await?.len(), 1, "capped");
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_data_and_bad_ones_name_each_problem() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let create = |id: &str, definition: TriggerDefinition| CreateTriggerDefinitionRequest {
        trigger_definition_id: id.to_owned(),
        trigger_definition: Some(definition),
        ..CreateTriggerDefinitionRequest::default()
    };
    // Every problem at once.
    let bad = TriggerDefinition {
        r#type: TriggerType::LifecycleStageChanged as i32,
        segment: format!("tenants/{TENANT}/segments/nobody"),
        rfm_segments: vec![1],
        lifecycle_stages: vec![99],
        frequency_cap: Some(FrequencyCap {
            max_triggers: 0,
            period: Some(secs(10)),
        }),
        ..TriggerDefinition::default()
    };
    let status = modeling
        .create_trigger_definition(create("bad", bad))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut found = touchline_e2e::field_violations(&status);
    found.sort();
    let expected: Vec<(String, String)> = [
        (
            "trigger_definition.frequency_cap.max_triggers",
            "OUT_OF_RANGE",
        ),
        ("trigger_definition.frequency_cap.period", "OUT_OF_RANGE"),
        ("trigger_definition.lifecycle_stages[0]", "UNKNOWN_VALUE"),
        ("trigger_definition.rfm_segments", "NOT_FOR_TYPE"),
        ("trigger_definition.segment", "NOT_FOR_TYPE"),
    ]
    .iter()
    .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(found, expected);
    let missing = modeling
        .create_trigger_definition(create("lost", once_a_day("nobody")))
        .await
        .expect_err("an unknown segment");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    // Create, read, list, update with the etag, refuse a stale etag, delete.
    let returning = TriggerDefinition {
        display_name: "win back".to_owned(),
        r#type: TriggerType::LifecycleStageChanged as i32,
        lifecycle_stages: vec![3],
        ..TriggerDefinition::default()
    };
    let made = modeling
        .create_trigger_definition(create("win-back", returning))
        .await?
        .into_inner()
        .trigger_definition
        .unwrap_or_default();
    assert_eq!(made.lifecycle_stages, vec![3]);
    assert!(made.frequency_cap.is_none());
    let mut change = made.clone();
    change.frequency_cap = Some(FrequencyCap {
        max_triggers: 2,
        period: Some(secs(7 * 86_400)),
    });
    change.r#type = TriggerType::ChurnFlagRaised as i32;
    let updated = modeling
        .update_trigger_definition(UpdateTriggerDefinitionRequest {
            trigger_definition: Some(change.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["frequency_cap".to_owned()],
            }),
        })
        .await?
        .into_inner()
        .trigger_definition
        .unwrap_or_default();
    assert_eq!(updated.r#type, made.r#type, "the type cannot change");
    assert_eq!(updated.frequency_cap, change.frequency_cap);
    assert_ne!(updated.etag, made.etag);
    let stale = modeling
        .update_trigger_definition(UpdateTriggerDefinitionRequest {
            trigger_definition: Some(change),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".to_owned()],
            }),
        })
        .await
        .expect_err("a stale etag");
    assert_eq!(stale.code(), tonic::Code::Aborted, "{stale:?}");
    let listed = modeling
        .list_trigger_definitions(ListTriggerDefinitionsRequest::default())
        .await?
        .into_inner()
        .trigger_definitions;
    assert_eq!(listed, vec![updated.clone()]);

    // A destination names definitions it delivers; an unknown one is refused by name.
    let unknown = modeling
        .create_webhook_destination(CreateWebhookDestinationRequest {
            webhook_destination: Some(WebhookDestination {
                url: "https://example.com/hooks".to_owned(),
                trigger_definitions: vec![definition_name("nope")],
                ..WebhookDestination::default()
            }),
            ..CreateWebhookDestinationRequest::default()
        })
        .await
        .expect_err("an unknown definition");
    assert!(
        touchline_e2e::field_violations(&unknown).contains(&(
            "webhook_destination.trigger_definitions[0]".to_owned(),
            "UNKNOWN_TRIGGER_DEFINITION".to_owned()
        )),
        "{unknown:?}"
    );

    modeling
        .delete_trigger_definition(DeleteTriggerDefinitionRequest {
            name: definition_name("win-back"),
            etag: updated.etag,
            allow_missing: false,
        })
        .await?;
    let gone = modeling
        .get_trigger_definition(GetTriggerDefinitionRequest {
            name: definition_name("win-back"),
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_definition_or_destination_names_is_not_deleted_from_under_it() -> anyhow::Result<()>
{
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "abandoned".to_owned(),
            segment: Some(Segment {
                rule: Some(abandoned_rule()),
                ..Segment::default()
            }),
            ..CreateSegmentRequest::default()
        })
        .await?;
    modeling
        .create_trigger_definition(CreateTriggerDefinitionRequest {
            trigger_definition_id: "once".to_owned(),
            trigger_definition: Some(once_a_day("abandoned")),
            ..CreateTriggerDefinitionRequest::default()
        })
        .await?;
    modeling
        .create_webhook_destination(CreateWebhookDestinationRequest {
            webhook_destination_id: "crm".to_owned(),
            webhook_destination: Some(WebhookDestination {
                url: "http://127.0.0.1:9/hooks".to_owned(),
                trigger_definitions: vec![definition_name("once")],
                ..WebhookDestination::default()
            }),
            ..CreateWebhookDestinationRequest::default()
        })
        .await?;
    let delete_segment = DeleteSegmentRequest {
        name: format!("tenants/{TENANT}/segments/abandoned"),
        ..DeleteSegmentRequest::default()
    };
    let delete_definition = DeleteTriggerDefinitionRequest {
        name: definition_name("once"),
        ..DeleteTriggerDefinitionRequest::default()
    };
    let segment_in_use = modeling
        .delete_segment(delete_segment.clone())
        .await
        .expect_err("a definition fires on it");
    assert_eq!(segment_in_use.code(), tonic::Code::FailedPrecondition);
    assert!(
        segment_in_use.message().contains("once"),
        "{segment_in_use:?}"
    );
    let definition_in_use = modeling
        .delete_trigger_definition(delete_definition.clone())
        .await
        .expect_err("a destination delivers it");
    assert_eq!(definition_in_use.code(), tonic::Code::FailedPrecondition);
    assert!(
        definition_in_use.message().contains("crm"),
        "{definition_in_use:?}"
    );

    // Taken apart from the outside in, each delete goes through.
    modeling
        .delete_webhook_destination(DeleteWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
            ..DeleteWebhookDestinationRequest::default()
        })
        .await?;
    modeling
        .delete_trigger_definition(delete_definition)
        .await?;
    modeling.delete_segment(delete_segment).await?;
    app.stop().await;
    Ok(())
}
