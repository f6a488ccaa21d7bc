//! IngestEvents and StreamEvents.

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;
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
                            let ingestor = ingestor.clone();
                            let tenant = tenant.clone();
                            let traceparent = traceparent.clone();
                            pending.push_back(async move {
                                ack_batch(&ingestor, &tenant, batch, traceparent).await
                            });
                        }
                        Ok(None) => inbound_done = true,
                        // The caller broke the stream; nothing to answer.
                        Err(_) => return,
                    }
                }
                Some(answer) = pending.next(), if !pending.is_empty() => {
                    match answer {
                        Ok(ack) => {
                            summary.batch_count += 1;
                            summary.accepted_count += i64::from(ack.accepted_count);
                            summary.duplicate_count += i64::from(ack.duplicate_count);
                            summary.rejected_count += i64::from(ack.rejected_count);
                            let response = pb::StreamEventsResponse {
                                response: Some(pb::stream_events_response::Response::Ack(ack)),
                            };
                            if tx.send(Ok(response)).await.is_err() {
                                return;
                            }
                        }
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
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

async fn ack_batch(
    ingestor: &crate::ingest::Ingestor,
    tenant: &str,
    batch: pb::StreamEventsRequest,
    traceparent: Option<String>,
) -> Result<pb::StreamEventsBatchAck, Status> {
    if batch.batch_id.trim().is_empty() {
        return Err(to_status(&CollectionError::invalid(
            "batch_id",
            "EMPTY",
            "every batch needs an id",
        )));
    }
    let response = ingestor
        .ingest(tenant, &batch.events, traceparent)
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
