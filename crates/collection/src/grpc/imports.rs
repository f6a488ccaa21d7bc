//! ImportFile, GetImport, ListImports, ListImportRowResults, CancelImport.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use touchline_error::to_status;
use touchline_proto::collection::v1 as pb;

use super::{BoxStream, CollectionApi, tenant_and_id};
use crate::error::CollectionError;
use crate::imports::{ImportError, Session, Step};

fn import_status(err: ImportError) -> Status {
    to_status(&err)
}

pub(super) async fn import_file(
    api: &CollectionApi,
    request: Request<Streaming<pb::ImportFileRequest>>,
) -> Result<Response<BoxStream<pb::ImportFileResponse>>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let mut inbound = request.into_inner();
    let first = inbound.message().await?.ok_or_else(|| {
        to_status(&CollectionError::invalid(
            "metadata",
            "REQUIRED",
            "the first message carries the metadata",
        ))
    })?;
    let metadata = first.metadata.ok_or_else(|| {
        to_status(&CollectionError::invalid(
            "metadata",
            "REQUIRED",
            "the first message carries the metadata",
        ))
    })?;
    let tenant = principal.tenant_for("")?;
    let wait = metadata.wait_for_completion;
    let session = api
        .importer
        .open(&tenant, &principal.subject, metadata)
        .await
        .map_err(import_status)?;
    let (tx, rx) = mpsc::channel(4);
    let shutdown = api.shutdown.clone();
    tokio::spawn(async move {
        let result = tokio::select! {
            result = drive(session, first.chunk, inbound, &tx, wait) => result,
            () = shutdown.wait() => Err(to_status(&CollectionError::ShuttingDown)),
        };
        if let Err(status) = result {
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

type Outbound = mpsc::Sender<Result<pb::ImportFileResponse, Status>>;

async fn send(tx: &Outbound, file_import: pb::FileImport) -> Result<(), Status> {
    tx.send(Ok(pb::ImportFileResponse {
        file_import: Some(file_import),
    }))
    .await
    .map_err(|_| to_status(&CollectionError::CallerGone))
}

/// Feeds the chunks of one call into the session, answering as the
/// protocol says; a dropped call just stops (committed rows stay).
async fn drive(
    mut session: Session,
    first_chunk: Option<pb::ImportChunk>,
    mut inbound: Streaming<pb::ImportFileRequest>,
    tx: &Outbound,
    _wait_for_completion: bool,
) -> Result<(), Status> {
    // Processing runs while the upload streams in, so the import is final
    // when the last chunk is answered, whether or not the caller asked to
    // wait for completion.
    send(tx, session.file_import()).await?;
    let mut next = first_chunk;
    loop {
        let chunk = match next.take() {
            Some(chunk) => chunk,
            None => match inbound.message().await? {
                Some(pb::ImportFileRequest {
                    metadata: Some(_), ..
                }) => {
                    return Err(to_status(&CollectionError::invalid(
                        "metadata",
                        "UNEXPECTED",
                        "only the first message carries metadata",
                    )));
                }
                Some(pb::ImportFileRequest {
                    chunk: Some(chunk), ..
                }) => chunk,
                Some(_) => {
                    return Err(to_status(&CollectionError::invalid(
                        "chunk",
                        "REQUIRED",
                        "every later message carries a chunk",
                    )));
                }
                // Half-closed before the end: the upload stays resumable.
                None => return Ok(()),
            },
        };
        match session.chunk(chunk).await.map_err(import_status)? {
            Step::Quiet => {}
            Step::Progress(file_import) => send(tx, file_import).await?,
            Step::Done(file_import) => return send(tx, file_import).await,
        }
    }
}

pub(super) async fn get_import(
    api: &CollectionApi,
    request: Request<pb::GetImportRequest>,
) -> Result<Response<pb::GetImportResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let (tenant, id) = tenant_and_id(&principal, &request.get_ref().name, "imports", "name")?;
    let file_import = api
        .importer
        .get(&tenant, &id)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::GetImportResponse {
        file_import: Some(file_import),
    }))
}

pub(super) async fn list_imports(
    api: &CollectionApi,
    request: Request<pb::ListImportsRequest>,
) -> Result<Response<pb::ListImportsResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::ListImportsRequest {
        parent,
        page_size,
        page_token,
        source,
        states,
    } = request.into_inner();
    let tenant = principal.tenant_for(&parent)?;
    let (file_imports, next_page_token) = api
        .importer
        .list(&tenant, &source, &states, page_size, &page_token)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::ListImportsResponse {
        file_imports,
        next_page_token,
    }))
}

pub(super) async fn list_import_row_results(
    api: &CollectionApi,
    request: Request<pb::ListImportRowResultsRequest>,
) -> Result<Response<pb::ListImportRowResultsResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::ListImportRowResultsRequest {
        parent,
        page_size,
        page_token,
        statuses,
    } = request.into_inner();
    let (tenant, id) = tenant_and_id(&principal, &parent, "imports", "parent")?;
    let (rows, next_page_token) = api
        .importer
        .rows(&tenant, &id, &statuses, page_size, &page_token)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::ListImportRowResultsResponse {
        rows,
        next_page_token,
    }))
}

pub(super) async fn cancel_import(
    api: &CollectionApi,
    request: Request<pb::CancelImportRequest>,
) -> Result<Response<pb::CancelImportResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let (tenant, id) = tenant_and_id(&principal, &request.get_ref().name, "imports", "name")?;
    let file_import = api
        .importer
        .cancel(&tenant, &id)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::CancelImportResponse {
        file_import: Some(file_import),
    }))
}
