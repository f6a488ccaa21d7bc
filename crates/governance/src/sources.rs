//! Collection's source registry as cleaning needs it: the source at the revision a raw event
//! was received under (through the typed client, with its deadline and retries), cached per
//! (tenant, source, revision) — revisions are immutable, so entries never go stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use touchline_proto::collection::v1::Source;

use crate::domain::source::{SourceSpec, from_proto};
use crate::upstream::Collection;

/// Cached entries before the cache is cleared (bounded memory).
const MAX_CACHED: usize = 10_000;

/// Cached specs by (tenant, source, revision).
type SpecCache = Arc<Mutex<HashMap<(String, String, i64), Arc<SourceSpec>>>>;

/// What the registry said about a source.
#[derive(Debug, Clone)]
pub enum SourceLookup {
    /// Its settings.
    Found(Arc<SourceSpec>),
    /// No such source (or revision) for the tenant.
    Unknown(String),
}

/// Source settings, fetched and cached.
#[derive(Debug, Clone)]
pub struct SourceRegistry {
    client: Collection,
    cache: SpecCache,
}

impl SourceRegistry {
    /// A registry reading through `client` (carrying the pipeline token).
    pub fn new(client: Collection) -> Self {
        Self {
            client,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The source `source` of `tenant` at `revision`; revision 0 (an
    /// unregistered source of a tenant that registers none) is a generic SDK
    /// stream and needs no call; revision -1 names no registered source.
    pub async fn get(
        &self,
        tenant: &str,
        source: &str,
        revision: i64,
    ) -> Result<SourceLookup, tonic::Status> {
        if revision < 0 {
            return Ok(SourceLookup::Unknown(
                "the tenant registers its sources and this id is none of them".to_owned(),
            ));
        }
        if revision == 0 || source.trim().is_empty() {
            return Ok(SourceLookup::Found(Arc::new(SourceSpec::generic(source))));
        }
        let key = (tenant.to_owned(), source.to_owned(), revision);
        if let Ok(cache) = self.cache.lock()
            && let Some(found) = cache.get(&key)
        {
            return Ok(SourceLookup::Found(found.clone()));
        }
        let pb = match self.fetch(tenant, source, revision).await? {
            Ok(pb) => pb,
            Err(detail) => return Ok(SourceLookup::Unknown(detail)),
        };
        let spec = match from_proto(&pb, revision) {
            Ok(spec) => Arc::new(spec),
            Err(detail) => return Ok(SourceLookup::Unknown(detail)),
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, spec.clone());
        }
        Ok(SourceLookup::Found(spec))
    }

    /// The source's current settings and revision, for replays after a
    /// source was fixed; `Ok(None)` when the source is not registered.
    /// Not cached: the current revision changes.
    pub async fn current(
        &self,
        tenant: &str,
        source: &str,
    ) -> Result<Option<(Arc<SourceSpec>, i64)>, tonic::Status> {
        if source.trim().is_empty() {
            return Ok(None);
        }
        let Ok(pb) = self.fetch(tenant, source, 0).await? else {
            return Ok(None);
        };
        let revision = pb.revision;
        Ok(from_proto(&pb, revision)
            .ok()
            .map(|spec| (Arc::new(spec), revision)))
    }

    /// The source at `revision`; the inner `Err` says why it is unknown.
    async fn fetch(
        &self,
        tenant: &str,
        source: &str,
        revision: i64,
    ) -> Result<Result<Source, String>, tonic::Status> {
        Ok(self
            .client
            .get_source(tenant, source, revision)
            .await?
            .ok_or_else(|| format!("source {source} revision {revision} is not registered")))
    }
}
