//! Collection and governance judged against the generator's ground truth: a run of the reference
//! data set is sent through the real services, then every record's fate (stored, duplicate,
//! clean, quarantined, deduplicated) is checked against what the generator planted on it.
//!
//! Used by the end-to-end suite on a small run and by the `governance-acceptance` binary on the
//! `medium` preset.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use tonic::Code;
use touchline_proto::collection::v1 as collection;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1 as common;
use touchline_proto::governance::v1 as governance;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::modeling::v1 as modeling_pb;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_sim::{DefectKind, SimConfig, TemplateKind, TruthEvent};
use touchline_testkit::{TestApp, token};

/// Scopes the harness needs.
const SCOPES: &[&str] = &[
    "events:write",
    "sources:write",
    "sources:read",
    "dictionary:read",
    "dictionary:write",
    "quarantine:read",
    "quality:read",
    "pipeline:read",
    "models:read",
];

/// What happened to one sent record.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Collection refused it, with the first violation's reason.
    Rejected(String),
    /// Collection had its message id already.
    DuplicateMessageId,
    /// Governance made it a clean event.
    Clean(Box<governance::CleanEvent>),
    /// Governance quarantined it.
    Quarantined(governance::QuarantineReason),
    /// Stored, yet neither clean nor quarantined: governance counted it as a duplicate of a
    /// record with the same natural key.
    Deduplicated,
}

/// Per defect kind: how many records carried it and how many ended the way they should.
#[derive(Debug, Clone, Default)]
pub struct KindScore {
    /// Records carrying the defect.
    pub planted: u64,
    /// Of those, handled as they should be.
    pub handled: u64,
    /// Up to five examples of the others.
    pub misses: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Persons generated.
    pub persons: u64,
    /// Records sent.
    pub sent: u64,
    /// Fates, counted.
    pub fates: BTreeMap<String, u64>,
    /// Per defect kind.
    pub kinds: BTreeMap<&'static str, KindScore>,
    /// Records without defects, checked field by field.
    pub clean_checked: u64,
    /// Of those, lost (not clean) or altered.
    pub clean_wrong: u64,
    /// Examples of lost or altered records.
    pub clean_examples: Vec<String>,
    /// Clean events whose instant was compared with the true one.
    pub instants_checked: u64,
    /// Of those, differing from the truth.
    pub instants_wrong: u64,
    /// Cross-source duplicates planted / recognised.
    pub cross_source: (u64, u64),
    /// Distinct orders wrongly deduplicated (a record without the defect that was deduplicated).
    pub false_merges: u64,
    /// The quality report's total row.
    pub quality_total: Option<governance::QualityReportRow>,
    /// Identity resolution judged on the event store against the true persons.
    pub identity: Option<PairScores>,
    /// The best recall any resolver could reach: events of one true person joined only where
    /// their clean identifiers connect them (a visitor who never logs in cannot be linked).
    pub linkable_recall: Option<f64>,
    /// The true persons split into the most stored persons, and the stored persons holding
    /// the most true ones, with what their events carried: where to look when the scores fall.
    pub identity_examples: Vec<String>,
    /// Seconds from the first send to a settled pipeline.
    pub seconds: f64,
}

/// Pairwise precision and recall of a clustering of events into persons: of the pairs of
/// events put under one person, how many truly share one (precision); of the pairs that truly
/// share one, how many were put together (recall).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairScores {
    /// Events scored (stored, with a true person).
    pub events: u64,
    /// Distinct persons the platform made of them.
    pub predicted_persons: u64,
    /// Distinct true persons behind them.
    pub true_persons: u64,
    /// Pairwise precision.
    pub precision: f64,
    /// Pairwise recall.
    pub recall: f64,
}

impl PairScores {
    /// Scores `(predicted, truth)` labels of the same events.
    pub fn of<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> PairScores {
        let mut cells: HashMap<(&str, &str), u64> = HashMap::new();
        let mut predicted: HashMap<&str, u64> = HashMap::new();
        let mut truth: HashMap<&str, u64> = HashMap::new();
        let mut events = 0;
        for (p, t) in labels {
            events += 1;
            *cells.entry((p, t)).or_default() += 1;
            *predicted.entry(p).or_default() += 1;
            *truth.entry(t).or_default() += 1;
        }
        let pairs = |n: &u64| (*n as f64) * (*n as f64 - 1.0) / 2.0;
        let together: f64 = cells.values().map(pairs).sum();
        let predicted_pairs: f64 = predicted.values().map(pairs).sum();
        let true_pairs: f64 = truth.values().map(pairs).sum();
        PairScores {
            events,
            predicted_persons: predicted.len() as u64,
            true_persons: truth.len() as u64,
            precision: if predicted_pairs > 0.0 {
                together / predicted_pairs
            } else {
                1.0
            },
            recall: if true_pairs > 0.0 {
                together / true_pairs
            } else {
                1.0
            },
        }
    }
}

impl Report {
    /// Planted defects (records × kinds) and how many were handled right.
    pub fn defects(&self) -> (u64, u64) {
        self.kinds
            .values()
            .fold((0, 0), |(p, h), k| (p + k.planted, h + k.handled))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "persons {}, records sent {}, settled after {:.1}s",
            self.persons, self.sent, self.seconds
        )?;
        writeln!(f, "fates: {:?}", self.fates)?;
        let (planted, handled) = self.defects();
        writeln!(
            f,
            "planted defects handled right: {handled}/{planted} ({:.3} %)",
            percent(handled, planted)
        )?;
        for (kind, score) in &self.kinds {
            writeln!(
                f,
                "  {kind:<24} {:>7}/{:<7} {:>8.3} %  {}",
                score.handled,
                score.planted,
                percent(score.handled, score.planted),
                score.misses.join(" | ")
            )?;
        }
        writeln!(
            f,
            "records without defects lost or altered: {}/{} {}",
            self.clean_wrong,
            self.clean_checked,
            self.clean_examples.join(" | ")
        )?;
        writeln!(
            f,
            "instants differing from the truth: {}/{}",
            self.instants_wrong, self.instants_checked
        )?;
        writeln!(
            f,
            "cross-source duplicates recognised: {}/{} ({:.3} %), false merges: {}",
            self.cross_source.1,
            self.cross_source.0,
            percent(self.cross_source.1, self.cross_source.0),
            self.false_merges
        )?;
        if let Some(i) = &self.identity {
            writeln!(
                f,
                "identity: {} events of {} true persons resolved to {} persons; pairwise precision {:.5}, recall {:.5}",
                i.events, i.true_persons, i.predicted_persons, i.precision, i.recall
            )?;
        }
        if let Some(ceiling) = self.linkable_recall {
            writeln!(
                f,
                "  recall ceiling from the data's own links: {ceiling:.5}"
            )?;
        }
        for example in &self.identity_examples {
            writeln!(f, "  {example}")?;
        }
        if let Some(q) = &self.quality_total {
            writeln!(
                f,
                "quality report: received {} = clean {} + quarantined {} + duplicates {} (message id {}, natural key {}), restatements {}, late {}, corrected {}",
                q.received,
                q.clean,
                q.quarantined,
                q.duplicates,
                q.duplicates_message_id,
                q.duplicates_natural_key,
                q.restatements,
                q.late_events,
                q.timestamps_corrected
            )?;
        }
        Ok(())
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Sends a run of `persons` (retail template, `seed`) into `tenant` of `app` and judges it.
/// With `score_identity`, also waits for the event store and scores identity resolution (the
/// app must then serve identity and modeling too).
pub async fn run(
    app: &TestApp,
    tenant: &str,
    persons: u64,
    seed: u64,
    score_identity: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let token = token(tenant, SCOPES);
    let channel = app.channel(&token)?;
    let parent = format!("tenants/{tenant}");
    let mut governance =
        GovernanceServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut collection = CollectionServiceClient::new(channel);

    governance
        .apply_industry_template(governance::ApplyIndustryTemplateRequest {
            parent: parent.clone(),
            template: "retail".to_owned(),
            mode: governance::ApplyTemplateMode::Merge as i32,
            ..Default::default()
        })
        .await
        .context("ApplyIndustryTemplate")?;
    governance
        .publish_dictionary_version(governance::PublishDictionaryVersionRequest {
            parent: parent.clone(),
            description: "retail template".to_owned(),
            ..Default::default()
        })
        .await
        .context("PublishDictionaryVersion")?;

    let cfg = SimConfig::new(TemplateKind::Retail, persons, seed);
    for (id, source) in touchline_sim::wire::sources(&cfg)? {
        let created = collection
            .create_source(collection::CreateSourceRequest {
                parent: parent.clone(),
                source_id: id.clone(),
                source: Some(source),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => return Err(status).with_context(|| format!("CreateSource {id}")),
        }
    }

    let truth = send_all(&collection, cfg).await?;
    let settled = settle(&mut governance, &parent, tenant).await?;
    let quality = governance
        .get_quality_report(governance::GetQualityReportRequest {
            parent: parent.clone(),
            ..Default::default()
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().total);

    let mut report = judge(&truth, &settled);
    if score_identity {
        let mut modeling =
            ModelingServiceClient::new(app.channel(&token)?).max_decoding_message_size(64 << 20);
        let stored = stored_persons(&mut modeling, &parent, settled.clean.len()).await?;
        report.identity = Some(PairScores::of(truth.iter().filter_map(|s| {
            let person = s.truth.person.as_deref()?;
            // Events stored without a person (every identifier removed as a placeholder,
            // or shared by several people) are not a cluster.
            let stored = stored
                .get(&s.truth.event.message_id)
                .filter(|p| !p.is_empty())?;
            Some((stored.as_str(), person))
        })));
        report.identity_examples = identity_examples(&truth, &stored, &settled);
        report.linkable_recall = Some(linkable_recall(&truth, &settled));
    }
    report.persons = persons;
    report.quality_total = quality;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The person the event store holds each message under, once it holds everything governance
/// made clean (or stops growing).
async fn stored_persons(
    modeling: &mut ModelingServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
    parent: &str,
    clean: usize,
) -> anyhow::Result<HashMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let (mut last, mut since) = (-1i64, Instant::now());
    loop {
        let total = modeling
            .count_events(modeling_pb::CountEventsRequest {
                parent: parent.to_owned(),
                ..Default::default()
            })
            .await
            .context("CountEvents")?
            .into_inner()
            .total_events;
        if total != last {
            (last, since) = (total, Instant::now());
        }
        let complete = usize::try_from(total).is_ok_and(|t| t >= clean);
        if complete || since.elapsed() > Duration::from_secs(15) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut out = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_events(modeling_pb::ListEventsRequest {
                parent: parent.to_owned(),
                page_size: 1_000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .context("ListEvents")?
            .into_inner();
        for event in page.events {
            out.insert(event.message_id, event.person_id);
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Pairwise recall of the finest partition the data supports: within each true person, clean
/// events sharing an identifier are joined (transitively).
fn linkable_recall(sent: &[Sent], settled: &Settled) -> f64 {
    let events: Vec<(&str, &governance::CleanEvent)> = sent
        .iter()
        .filter_map(|s| {
            let person = s.truth.person.as_deref()?;
            let clean = settled.clean.get(&s.truth.event.message_id)?;
            (!clean.identifiers.is_empty()).then_some((person, clean))
        })
        .collect();
    let mut parent: Vec<usize> = (0..events.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    for (i, (person, clean)) in events.iter().enumerate() {
        for id in &clean.identifiers {
            let key = (
                *person,
                id.r#type.as_str(),
                id.scope.as_str(),
                id.value.as_str(),
            );
            let j = *first.entry(key).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    let labels: Vec<String> = (0..events.len())
        .map(|i| root(&mut parent, i).to_string())
        .collect();
    PairScores::of(
        labels
            .iter()
            .zip(&events)
            .map(|(label, (person, _))| (label.as_str(), *person)),
    )
    .recall
}

/// Describes the worst-split true persons and the most-merged stored persons.
fn identity_examples(
    sent: &[Sent],
    stored: &HashMap<String, String>,
    settled: &Settled,
) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut by_truth: HashMap<&str, BTreeMap<&str, BTreeSet<String>>> = HashMap::new();
    let mut by_stored: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for s in sent {
        let (Some(person), Some(held)) = (
            s.truth.person.as_deref(),
            stored
                .get(&s.truth.event.message_id)
                .filter(|p| !p.is_empty()),
        ) else {
            continue;
        };
        let kinds = by_truth
            .entry(person)
            .or_default()
            .entry(held.as_str())
            .or_default();
        kinds.insert(s.truth.event.channel.to_owned());
        for id in &s.truth.event.identifiers {
            kinds.insert(id.kind.to_owned());
        }
        by_stored.entry(held.as_str()).or_default().insert(person);
    }
    let mut split: Vec<_> = by_truth.into_iter().collect();
    split.sort_by_key(|(person, parts)| (std::cmp::Reverse(parts.len()), *person));
    let mut out: Vec<String> = split
        .iter()
        .take(3)
        .map(|(person, parts)| {
            let parts: Vec<String> = parts
                .values()
                .map(|kinds| kinds.iter().cloned().collect::<Vec<_>>().join("+"))
                .collect();
            format!(
                "true person {person} split into {}: {}",
                parts.len(),
                parts.join(" | ")
            )
        })
        .collect();
    let mut merged: Vec<_> = by_stored.into_iter().filter(|(_, t)| t.len() > 1).collect();
    merged.sort_by_key(|(held, truths)| (std::cmp::Reverse(truths.len()), *held));
    for (held, truths) in merged.iter().take(3) {
        // The identifiers of this stored person that more than one true person carried.
        let mut carriers: HashMap<(&str, &str, &str), BTreeSet<&str>> = HashMap::new();
        for s in sent {
            let (Some(person), Some(clean)) = (
                s.truth.person.as_deref(),
                settled.clean.get(&s.truth.event.message_id),
            ) else {
                continue;
            };
            if stored.get(&s.truth.event.message_id).map(String::as_str) != Some(*held) {
                continue;
            }
            for id in &clean.identifiers {
                carriers
                    .entry((id.r#type.as_str(), id.scope.as_str(), id.value.as_str()))
                    .or_default()
                    .insert(person);
            }
        }
        let mut shared: BTreeMap<&str, usize> = BTreeMap::new();
        for ((kind, _, _), persons) in &carriers {
            if persons.len() > 1 {
                *shared.entry(kind).or_default() += 1;
            }
        }
        out.push(format!(
            "stored person {held} holds {} true persons; identifiers shared across them by type: {shared:?}",
            truths.len()
        ));
    }
    out
}

/// A sent record and what collection said.
struct Sent {
    truth: TruthEvent,
    status: collection::IngestStatus,
    reason: String,
}

async fn send_all(
    collection: &CollectionServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
    cfg: SimConfig,
) -> anyhow::Result<Vec<Sent>> {
    let mut stream = touchline_sim::events(cfg)?;
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(500);
    while let Some(t) = stream.next_with_truth() {
        batch.push(t);
        if batch.len() == 500 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    let results: Vec<anyhow::Result<Vec<Sent>>> = futures::stream::iter(batches)
        .map(|batch| {
            let mut client = collection.clone();
            async move {
                let events = batch
                    .iter()
                    .map(|t| touchline_sim::wire::event_to_proto(t.event.clone(), t.received_ms))
                    .collect();
                let response = client
                    .ingest_events(collection::IngestEventsRequest { events })
                    .await
                    .context("IngestEvents")?
                    .into_inner();
                let mut by_index: HashMap<i32, &collection::IngestResult> =
                    response.results.iter().map(|r| (r.index, r)).collect();
                Ok(batch
                    .into_iter()
                    .enumerate()
                    .map(|(i, truth)| {
                        let result = i32::try_from(i).ok().and_then(|i| by_index.remove(&i));
                        let status = result
                            .and_then(|r| collection::IngestStatus::try_from(r.status).ok())
                            .unwrap_or(collection::IngestStatus::Unspecified);
                        let reason = result
                            .and_then(|r| r.violations.first())
                            .map(|v| v.reason.clone())
                            .unwrap_or_default();
                        Sent {
                            truth,
                            status,
                            reason,
                        }
                    })
                    .collect())
            }
        })
        .buffered(4)
        .collect()
        .await;
    let mut sent = Vec::new();
    for r in results {
        sent.extend(r?);
    }
    Ok(sent)
}

/// What governance produced for the tenant, once it stops changing.
struct Settled {
    clean: HashMap<String, governance::CleanEvent>,
    quarantined: HashMap<String, governance::QuarantineReason>,
}

async fn settle(
    governance: &mut GovernanceServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
    parent: &str,
    tenant: &str,
) -> anyhow::Result<Settled> {
    let mut clean = HashMap::new();
    let mut stream = governance
        .tail_clean_events(governance::TailCleanEventsRequest {
            selector: Some(common::TailSelector {
                cursors: vec![common::PartitionCursor {
                    tenant: tenant.to_owned(),
                    after_sequence: 0,
                }],
                all_tenants: false,
                max_batch_size: 5_000,
            }),
        })
        .await
        .context("TailCleanEvents")?
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mut quarantined_before = u64::MAX;
    loop {
        // Quiet for ten seconds with an unchanged quarantine means governance is done.
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(message) => {
                let Some(batch) = message.context("clean log stream")? else {
                    anyhow::bail!("the clean log stream ended");
                };
                for event in batch.events {
                    clean.insert(event.message_id.clone(), event);
                }
            }
            Err(_) => {
                let quarantined = list_quarantined(governance, parent).await?;
                let count = quarantined.len() as u64;
                if count == quarantined_before {
                    return Ok(Settled { clean, quarantined });
                }
                quarantined_before = count;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "governance did not settle");
    }
}

async fn list_quarantined(
    governance: &mut GovernanceServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
    parent: &str,
) -> anyhow::Result<HashMap<String, governance::QuarantineReason>> {
    let mut out = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = governance
            .list_quarantined(governance::ListQuarantinedRequest {
                parent: parent.to_owned(),
                page_size: 1_000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .context("ListQuarantined")?
            .into_inner();
        for q in page.quarantined_events {
            let reason = governance::QuarantineReason::try_from(q.reason)
                .unwrap_or(governance::QuarantineReason::Unspecified);
            if let Some(event) = q.event {
                out.insert(event.message_id, reason);
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

fn fate_of(sent: &Sent, settled: &Settled) -> Fate {
    match sent.status {
        collection::IngestStatus::Duplicate => Fate::DuplicateMessageId,
        collection::IngestStatus::Accepted => {
            let id = &sent.truth.event.message_id;
            if let Some(clean) = settled.clean.get(id) {
                Fate::Clean(Box::new(clean.clone()))
            } else if let Some(reason) = settled.quarantined.get(id) {
                Fate::Quarantined(*reason)
            } else {
                Fate::Deduplicated
            }
        }
        _ => Fate::Rejected(sent.reason.clone()),
    }
}

fn fate_name(fate: &Fate) -> String {
    match fate {
        Fate::Rejected(reason) => format!("rejected:{reason}"),
        Fate::DuplicateMessageId => "duplicate_message_id".to_owned(),
        Fate::Clean(c) if c.restatement => "clean_restatement".to_owned(),
        Fate::Clean(_) => "clean".to_owned(),
        Fate::Quarantined(reason) => format!("quarantined:{}", reason.as_str_name()),
        Fate::Deduplicated => "deduplicated".to_owned(),
    }
}

/// Defects that decide a record's fate on their own: the record is a duplicate or is
/// quarantined. A record carrying one is judged on those alone; its other defects (an alias,
/// a late arrival) are moot once it is rightly turned away.
fn is_terminal(kind: DefectKind) -> bool {
    matches!(
        kind,
        DefectKind::SdkRetryDuplicate
            | DefectKind::CrossSourceDuplicate
            | DefectKind::AdReportResent
            | DefectKind::BadTimestamp
            | DefectKind::AmbiguousTimestamp
            | DefectKind::NulByte
    )
}

fn judge(sent: &[Sent], settled: &Settled) -> Report {
    let fates: Vec<Fate> = sent.iter().map(|s| fate_of(s, settled)).collect();
    let mut report = Report {
        sent: sent.len() as u64,
        ..Default::default()
    };
    // The dictionary's canonical name of each source name, learnt from records without an alias.
    let mut canonical: HashMap<String, String> = HashMap::new();
    for (s, fate) in sent.iter().zip(&fates) {
        *report.fates.entry(fate_name(fate)).or_default() += 1;
        if let Fate::Clean(c) = fate
            && !s.truth.defects.contains(&DefectKind::EventAlias)
        {
            canonical.insert(c.source_event_name.clone(), c.event_name.clone());
        }
    }
    // Records describing the same thing.
    let mut same: HashMap<Thing, Vec<usize>> = HashMap::new();
    for (i, s) in sent.iter().enumerate() {
        same.entry(thing(s, &canonical)).or_default().push(i);
    }
    // Records sent under one message id (an SDK retry and its original): the first to commit
    // is stored, the other is a duplicate, whichever of the two arrives first.
    let mut by_message: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in sent.iter().enumerate() {
        by_message
            .entry(s.truth.event.message_id.as_str())
            .or_default()
            .push(i);
    }
    let retry_split = |i: usize| {
        let others = || {
            by_message[sent[i].truth.event.message_id.as_str()]
                .iter()
                .filter(move |&&j| j != i)
        };
        match &fates[i] {
            Fate::DuplicateMessageId => {
                others().any(|&j| !matches!(fates[j], Fate::DuplicateMessageId | Fate::Rejected(_)))
            }
            Fate::Rejected(_) => false,
            _ => others().any(|&j| fates[j] == Fate::DuplicateMessageId),
        }
    };
    let twin_kept = |i: usize| {
        let s = &sent[i];
        same.get(&thing(s, &canonical)).is_some_and(|group| {
            group.iter().any(|&j| {
                j != i
                    && sent[j].truth.event.message_id != s.truth.event.message_id
                    && matches!(fates[j], Fate::Clean(_))
            })
        })
    };
    for (i, (s, fate)) in sent.iter().zip(&fates).enumerate() {
        let label = format!(
            "{} {} -> {}",
            s.truth.event.source,
            s.truth.event.message_id,
            fate_name(fate)
        );
        if let Fate::Clean(c) = fate {
            report.instants_checked += 1;
            if !same_instant(c, s.truth.true_ms) {
                report.instants_wrong += 1;
            }
        }
        // Deduplicated by natural key: right only when the record it duplicates describes the
        // same thing (same key, same true instant) and was kept.
        if *fate == Fate::Deduplicated && !twin_kept(i) {
            report.false_merges += 1;
        }
        if s.truth.defects.contains(&DefectKind::CrossSourceDuplicate) {
            report.cross_source.0 += 1;
            report.cross_source.1 += u64::from(
                (*fate == Fate::Deduplicated && twin_kept(i))
                    || (matches!(fate, Fate::Clean(_))
                        && twin_turned_away(i, sent, &fates, &same, &canonical)),
            );
        }
        let judged: Vec<DefectKind> = if s.truth.defects.iter().any(|k| is_terminal(*k)) {
            s.truth
                .defects
                .iter()
                .copied()
                .filter(|k| is_terminal(*k))
                .collect()
        } else {
            s.truth.defects.clone()
        };
        if judged.is_empty() {
            // A record without defects may still be the kept or the dropped copy of an order
            // present in two sources (only one copy carries the defect).
            if (*fate == Fate::Deduplicated && twin_kept(i))
                || (*fate == Fate::DuplicateMessageId && retry_split(i))
            {
                continue;
            }
            report.clean_checked += 1;
            if let Some(problem) = unaltered(s, fate) {
                report.clean_wrong += 1;
                if report.clean_examples.len() < 5 {
                    report.clean_examples.push(format!("{label}: {problem}"));
                }
            }
            continue;
        }
        // One record, one fate: it is right when it is right for any of its deciding defects.
        let pair_split = (*fate == Fate::Deduplicated && twin_kept(i))
            || (matches!(fate, Fate::Clean(_))
                && twin_turned_away(i, sent, &fates, &same, &canonical));
        // A record rightly dropped as the duplicate of one kept is done with, whatever else
        // was wrong with it.
        let right = (*fate == Fate::Deduplicated && twin_kept(i))
            || ((s.truth.defects.contains(&DefectKind::SdkRetryDuplicate)
                || *fate == Fate::DuplicateMessageId)
                && retry_split(i))
            || judged
                .iter()
                .any(|kind| handled(*kind, s, fate, &canonical, pair_split));
        for kind in judged {
            let score = report.kinds.entry(kind.name()).or_default();
            score.planted += 1;
            if right {
                score.handled += 1;
            } else if score.misses.len() < 5 {
                score.misses.push(label.clone());
            }
        }
    }
    report
}

/// What a record describes, so that two records of one thing can be recognised.
type Thing = (String, String);

/// An order's event is the order id with the dictionary's name for the event (the POS export,
/// the CRM's order export and the web shop's log name one purchase differently, at different
/// moments); any other record is its key at its true instant.
fn thing(sent: &Sent, canonical: &HashMap<String, String>) -> Thing {
    let event = &sent.truth.event;
    match event
        .properties
        .get("order_id")
        .and_then(serde_json::Value::as_str)
    {
        Some(order) => {
            let name = event.event.as_deref().unwrap_or_default();
            let name = sent.truth.true_name.as_deref().unwrap_or(name);
            let name = canonical.get(name).map_or(name, String::as_str);
            (order.to_owned(), name.to_owned())
        }
        None => (sent.truth.key.clone(), sent.truth.true_ms.to_string()),
    }
}

/// Whether the other copy of the same thing was the one turned away (deduplicated, or
/// quarantined for a defect of its own).
fn twin_turned_away(
    i: usize,
    sent: &[Sent],
    fates: &[Fate],
    same: &HashMap<Thing, Vec<usize>>,
    canonical: &HashMap<String, String>,
) -> bool {
    same.get(&thing(&sent[i], canonical)).is_some_and(|group| {
        group
            .iter()
            .any(|&j| j != i && matches!(fates[j], Fate::Deduplicated | Fate::Quarantined(_)))
    })
}

/// The clean instant is the true one; a source that records whole seconds is judged to the
/// second, since its data cannot carry more.
fn same_instant(clean: &governance::CleanEvent, true_ms: i64) -> bool {
    match event_ms(clean) {
        Some(ms) if ms == true_ms => true,
        Some(ms) => ms.rem_euclid(1_000) == 0 && ms == true_ms - true_ms.rem_euclid(1_000),
        None => false,
    }
}

fn event_ms(clean: &governance::CleanEvent) -> Option<i64> {
    clean
        .event_time
        .as_ref()
        .map(|t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
}

/// Whether a record the generator left alone came through whole: clean, at its true instant,
/// with every property it was sent with.
fn unaltered(sent: &Sent, fate: &Fate) -> Option<String> {
    let Fate::Clean(clean) = fate else {
        return Some("not clean".to_owned());
    };
    if !same_instant(clean, sent.truth.true_ms) {
        return Some(format!(
            "instant {:?} != true {}",
            event_ms(clean),
            sent.truth.true_ms
        ));
    }
    if sent.truth.event.event.as_deref().unwrap_or_default() != clean.source_event_name
        && !clean.source_event_name.is_empty()
    {
        return Some(format!("source event name {}", clean.source_event_name));
    }
    let props = clean.properties.as_ref().map(|p| &p.fields);
    let identifier_values: Vec<&str> = sent
        .truth
        .event
        .identifiers
        .iter()
        .map(|i| i.value.as_str())
        .collect();
    for (key, value) in &sent.truth.event.properties {
        // Identifier columns are pseudonymised like the identifiers themselves, and direct
        // identifiers never travel in clear.
        if value
            .as_str()
            .is_some_and(|v| identifier_values.contains(&v))
            || DIRECT_IDENTIFIER_FIELDS.contains(&key.as_str())
        {
            continue;
        }
        let Some(kept) = props.and_then(|p| p.get(key)) else {
            return Some(format!("property {key} missing"));
        };
        if !same_value(value, kept) {
            return Some(format!("property {key} = {kept:?}, sent {value}"));
        }
    }
    let sent_ids = sent.truth.event.identifiers.len();
    if sent_ids > 0 && clean.identifiers.is_empty() {
        return Some("identifiers lost".to_owned());
    }
    None
}

/// A JSON value as sent and a protobuf value as kept are the same (numbers as numbers,
/// numeric text coerced by the dictionary counts as the same number).
fn same_value(sent: &serde_json::Value, kept: &prost_types::Value) -> bool {
    use prost_types::value::Kind;
    match (sent, kept.kind.as_ref()) {
        (serde_json::Value::Null, Some(Kind::NullValue(_)) | None) => true,
        (serde_json::Value::Bool(a), Some(Kind::BoolValue(b))) => a == b,
        (serde_json::Value::Number(a), Some(Kind::NumberValue(b))) => {
            a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
        }
        (serde_json::Value::String(a), Some(Kind::StringValue(b))) => a == b,
        (serde_json::Value::String(a), Some(Kind::NumberValue(b))) => {
            a.trim().parse::<f64>().is_ok_and(|a| (a - b).abs() < 1e-9)
        }
        (serde_json::Value::Array(a), Some(Kind::ListValue(b))) => {
            a.len() == b.values.len() && a.iter().zip(&b.values).all(|(x, y)| same_value(x, y))
        }
        (serde_json::Value::Object(a), Some(Kind::StructValue(b))) => a
            .iter()
            .all(|(k, v)| b.fields.get(k).is_some_and(|kept| same_value(v, kept))),
        _ => false,
    }
}

/// The generator's placeholder identifier values (`unknown`, all zeros, `13800000000`).
fn is_placeholder(value: &str) -> bool {
    let digits: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
    value.eq_ignore_ascii_case("unknown")
        || (!digits.is_empty() && digits.chars().all(|c| c == '0'))
        || digits.ends_with("13800000000")
}

/// Property names that hold direct identifiers, which governance pseudonymises or drops.
const DIRECT_IDENTIFIER_FIELDS: &[&str] = &["phone", "email", "mobile"];

/// Whether the record carrying `kind` ended as that defect should.
fn handled(
    kind: DefectKind,
    sent: &Sent,
    fate: &Fate,
    canonical: &HashMap<String, String>,
    pair_split: bool,
) -> bool {
    use governance::QuarantineReason as R;
    let event = &sent.truth.event;
    match kind {
        DefectKind::SdkRetryDuplicate => *fate == Fate::DuplicateMessageId,
        // A row delivered again unchanged is a natural-key duplicate; changed, a restatement.
        // Either copy may arrive first: one is kept, the other deduplicated.
        DefectKind::AdReportResent => pair_split || matches!(fate, Fate::Clean(c) if c.restatement),
        DefectKind::CrossSourceDuplicate => pair_split,
        // Unparseable, or of the wrong unit (seconds read as milliseconds land in 1970).
        DefectKind::BadTimestamp => matches!(
            fate,
            Fate::Quarantined(R::InvalidTimestamp | R::TimestampTooOld | R::TimestampInFuture)
        ),
        DefectKind::AmbiguousTimestamp => matches!(fate, Fate::Quarantined(R::InvalidTimestamp)),
        // Kept only when something else still identifies the person (e.g. a click id from
        // the landing page's URL parameters).
        // An order log's missing order id is a missing required property.
        DefectKind::MissingId => match fate {
            Fate::Quarantined(R::NoIdentifier | R::MissingRequiredProperty) => true,
            Fate::Clean(c) => !c.identifiers.is_empty(),
            _ => false,
        },
        // A NUL inside an identifier column makes the identifier invalid.
        DefectKind::NulByte => matches!(
            fate,
            Fate::Quarantined(R::InvalidPropertyValue | R::MalformedPayload | R::InvalidIdentifier)
        ),
        DefectKind::InvalidPhone => match fate {
            Fate::Quarantined(R::InvalidIdentifier) => true,
            // The bad phone dropped, the record kept on its other identifiers.
            Fate::Clean(c) => {
                let phones =
                    |ids: &mut dyn Iterator<Item = &str>| ids.filter(|t| *t == "phone").count();
                phones(&mut c.identifiers.iter().map(|i| i.r#type.as_str()))
                    < phones(&mut event.identifiers.iter().map(|i| i.kind))
            }
            _ => false,
        },
        DefectKind::WrongType => match fate {
            Fate::Quarantined(R::InvalidPropertyType) => true,
            Fate::Clean(c) => wrong_type_coerced(sent, c),
            _ => false,
        },
        DefectKind::DstGap | DefectKind::DstOverlap | DefectKind::LateArrival => {
            matches!(fate, Fate::Clean(c) if same_instant(c, sent.truth.true_ms))
        }
        // The placeholder never reaches identity: no clean identifier holds one, and a
        // placeholder phone (pseudonymised, so not visible as such) is gone from the phones.
        DefectKind::PlaceholderId => match fate {
            Fate::Clean(c) => {
                let sent_phones = event
                    .identifiers
                    .iter()
                    .filter(|i| i.kind == "phone" && !is_placeholder(&i.value))
                    .count();
                let kept_phones = c.identifiers.iter().filter(|i| i.r#type == "phone").count();
                !c.identifiers.iter().any(|i| is_placeholder(&i.value))
                    && kept_phones <= sent_phones
            }
            Fate::Quarantined(R::NoIdentifier) => true,
            _ => false,
        },
        DefectKind::SharedDevice => matches!(fate, Fate::Clean(_)),
        DefectKind::EventAlias => match (fate, sent.truth.true_name.as_deref()) {
            (Fate::Clean(c), Some(true_name)) => canonical
                .get(true_name)
                .is_some_and(|expected| *expected == c.event_name),
            _ => false,
        },
    }
}

/// The property the generator wrote as text is a number in the clean event.
fn wrong_type_coerced(sent: &Sent, clean: &governance::CleanEvent) -> bool {
    use prost_types::value::Kind;
    let props = clean.properties.as_ref().map(|p| &p.fields);
    sent.truth.event.properties.iter().any(|(key, value)| {
        value.is_string()
            && props
                .and_then(|p| p.get(key))
                .is_some_and(|v| matches!(v.kind, Some(Kind::NumberValue(_))))
    })
}

#[cfg(test)]
mod tests {
    use super::PairScores;

    #[test]
    fn pair_scores_count_pairs_not_events() {
        // Truth: {1,2,3} and {4}; predicted: {1,2} and {3,4}.
        let scores = PairScores::of([("a", "x"), ("a", "x"), ("b", "x"), ("b", "y")]);
        // Together: pair (1,2) only. Predicted pairs: (1,2), (3,4). True pairs: 3 of {1,2,3}.
        assert!((scores.precision - 0.5).abs() < 1e-12);
        assert!((scores.recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((scores.predicted_persons, scores.true_persons), (2, 2));
    }
}
