//! The v1 contracts of every touchline service, generated from `proto/`.
//!
//! Nothing here is written by hand except the module tree, the reflection
//! descriptor and the scope table, both produced by the build script. Services
//! and clients depend on this crate for `tonic` and `prost` too, so versions
//! never split across the workspace.
#![allow(
    clippy::too_many_lines,
    clippy::allow_attributes_without_reason,
    reason = "the generated clients and servers, whose own allows carry no reasons"
)]

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `FileDescriptorSet` of every touchline proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/touchline_descriptor.bin"));

/// Authorisation table generated from the `required_scope` method option.
pub mod scopes {
    include!(concat!(env!("OUT_DIR"), "/required_scopes.rs"));
}

/// Shared messages: events, identifiers, log cursors, method options.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.common.v1");
    }
}

/// Pipeline status: where every stage stands in the log it consumes.
pub mod pipeline {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.pipeline.v1");
    }
}

/// The collection service: ingestion and the raw event log.
pub mod collection {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.collection.v1");
    }
}

/// The governance service: dictionary, cleaning, quarantine, the clean log.
pub mod governance {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.governance.v1");
    }
}

/// The identity service: the identity graph and person lookups.
pub mod identity {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.identity.v1");
    }
}

/// The modeling service: the unified event store and journey models.
pub mod modeling {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.modeling.v1");
    }
}

/// The reporting service: dashboards, KPIs, recommendations.
pub mod reporting {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("touchline.reporting.v1");
    }
}
