//! IngestEvents and StreamEvents.

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use touchline_error::to_status;
use touchline_proto::collection::v1 as pb;

use super::{BoxStream, CollectionApi};
use crate::error::CollectionError;

pub(super) async fn ingest_events(
    api: &CollectionApi,
    request: Request<pb::IngestEventsRequest>,
) -> Result<Response<pb::IngestEventsResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let events = request.into_inner().events;
    tracing::Span::current().record("tenant", principal.tenant.as_str());
    tracing::Span::current().record("events", events.len());
    let traceparent = touchline_telemetry::current_traceparent();
    let response = api
        .ingestor
        .ingest(&principal.tenant, &events, traceparent)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(response))
}

#[expect(
    clippy::too_many_lines,
    reason = "the stream's loop (admit in order, ingest, answer) with its state local to the loop"
)]
pub(super) async fn stream_events(
    api: &CollectionApi,
    request: Request<Streaming<pb::StreamEventsRequest>>,
) -> Result<Response<BoxStream<pb::StreamEventsResponse>>, Status> {
    let principal = touchline_auth::principal(&request)?;
    tracing::Span::current().record("tenant", principal.tenant.as_str());
    let traceparent = touchline_telemetry::current_traceparent();
    let mut inbound = request.into_inner();
    let max_in_flight = api.config.stream_max_in_flight_batches.max(1);
    let (tx, rx) = mpsc::channel(max_in_flight);
    let ingestor = api.ingestor.clone();
    let shutdown = api.shutdown.clone();
    let tenant = principal.tenant;
    tokio::spawn(async move {
        let mut pending = FuturesOrdered::new();
        let mut previous_committed: Option<oneshot::Receiver<()>> = None;
        let mut summary = pb::StreamEventsSummary::default();
        let mut inbound_done = false;
        loop {
            if inbound_done && pending.is_empty() {
                let _ = tx
                    .send(Ok(pb::StreamEventsResponse {
                        response: Some(pb::stream_events_response::Response::Summary(summary)),
                    }))
                    .await;
                return;
            }
            tokio::select! {
                next = inbound.message(), if !inbound_done && pending.len() < max_in_flight => {
                    match next {
                        Ok(Some(batch)) => {
                            // Batches are admitted in order, before any later one is read:
                            // one refused here ends the stream once the earlier ones are
                            // answered, and no batch after it is stored.
                            // Earlier batches keep being answered while this one waits for
                            // admission: they hold the in-flight bound it waits on.
                            let admission = {
                                let mut admit = std::pin::pin!(admit_batch(&ingestor, &tenant, &batch));
                                loop {
                                    tokio::select! {
                                        admitted = &mut admit => break admitted,
                                        Some(answer) = pending.next(), if !pending.is_empty() => {
                                            if !send_answer(answer, &mut summary, &tx).await {
                                                return;
                                            }
                                        }
                                    }
                                }
                            };
                            let admitted = match admission {
                                Ok(admitted) => admitted,
                                Err(status) => {
                                    answer_pending(&mut pending, &mut summary, &tx).await;
                                    let _ = tx.send(Err(status)).await;
                                    return;
                                }
                            };
                            let ingestor = ingestor.clone();
                            let tenant = tenant.clone();
                            let traceparent = traceparent.clone();
                            // A stream's batches commit in order, one after the other, as the
                            // events of one batch do: a message id repeated in a later batch
                            // is its duplicate, never the other way round. Reading, admission
                            // and answering still overlap the commits.
                            let (done, next_may_commit) = oneshot::channel::<()>();
                            let previous = previous_committed.replace(next_may_commit);
                            pending.push_back(async move {
                                if let Some(previous) = previous {
                                    // Err: the earlier batch ended (answered or failed).
                                    let _ = previous.await;
                                }
                                let answer =
                                    ack_batch(&ingestor, admitted, &tenant, batch, traceparent).await;
                                drop(done);
                                answer
                            });
                        }
                        Ok(None) => inbound_done = true,
                        // A batch that does not decode, or is over the size limit, is the
                        // caller's to fix: the earlier batches are answered, then the error
                        // with the contract's code. Any other error means the caller broke
                        // the stream, and there is nobody to answer.
                        Err(status) => {
                            let status = touchline_runtime::codes::contract_status(status);
                            if matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted) {
                                answer_pending(&mut pending, &mut summary, &tx).await;
                                let _ = tx.send(Err(status)).await;
                            }
                            return;
                        }
                    }
                }
                Some(answer) = pending.next(), if !pending.is_empty() => {
                    if !send_answer(answer, &mut summary, &tx).await {
                        return;
                    }
                }
                () = tx.closed() => return,
                () = shutdown.wait(), if pending.is_empty() => {
                    let _ = tx.send(Err(to_status(&CollectionError::ShuttingDown))).await;
                    return;
                }
            }
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

type Answer = Result<pb::StreamEventsBatchAck, Status>;
type Responses = mpsc::Sender<Result<pb::StreamEventsResponse, Status>>;

/// Sends one batch's answer; false when the stream is over (an error sent, or the caller gone).
async fn send_answer(
    answer: Answer,
    summary: &mut pb::StreamEventsSummary,
    tx: &Responses,
) -> bool {
    match answer {
        Ok(ack) => {
            summary.batch_count += 1;
            summary.accepted_count += i64::from(ack.accepted_count);
            summary.duplicate_count += i64::from(ack.duplicate_count);
            summary.rejected_count += i64::from(ack.rejected_count);
            let response = pb::StreamEventsResponse {
                response: Some(pb::stream_events_response::Response::Ack(ack)),
            };
            tx.send(Ok(response)).await.is_ok()
        }
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            false
        }
    }
}

/// Answers every batch already admitted, in order, before the stream ends with an error.
async fn answer_pending<F: std::future::Future<Output = Answer>>(
    pending: &mut FuturesOrdered<F>,
    summary: &mut pb::StreamEventsSummary,
    tx: &Responses,
) {
    while let Some(answer) = pending.next().await {
        if !send_answer(answer, summary, tx).await {
            return;
        }
    }
}

async fn admit_batch(
    ingestor: &crate::ingest::Ingestor,
    tenant: &str,
    batch: &pb::StreamEventsRequest,
) -> Result<crate::ingest::Admitted, Status> {
    if batch.batch_id.trim().is_empty() {
        return Err(to_status(&CollectionError::invalid(
            "batch_id",
            "EMPTY",
            "every batch needs an id",
        )));
    }
    ingestor
        .admit(tenant, &batch.events)
        .await
        .map_err(|err| to_status(&err))
}

async fn ack_batch(
    ingestor: &crate::ingest::Ingestor,
    admitted: crate::ingest::Admitted,
    tenant: &str,
    batch: pb::StreamEventsRequest,
    traceparent: Option<String>,
) -> Answer {
    let response = ingestor
        .ingest_admitted(admitted, tenant, &batch.events, traceparent)
        .await
        .map_err(|err| to_status(&err))?;
    let last_sequence = response
        .results
        .iter()
        .map(|r| r.sequence)
        .max()
        .unwrap_or(0);
    let results = if batch.return_all_results {
        response.results
    } else {
        response
            .results
            .into_iter()
            .filter(|r| r.status() != pb::IngestStatus::Accepted)
            .collect()
    };
    Ok(pb::StreamEventsBatchAck {
        batch_id: batch.batch_id,
        results,
        accepted_count: response.accepted_count,
        duplicate_count: response.duplicate_count,
        rejected_count: response.rejected_count,
        last_sequence,
    })
}
