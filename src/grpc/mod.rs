//! The gRPC edge: proto <-> domain translation, and the one place that builds a `Status`.
pub mod auth_service;
pub mod codec;
pub mod health;
pub mod request;
pub mod status;

/// Code generated from `proto/tessera/auth/v1/auth.proto`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("tessera.auth.v1");

    /// The encoded descriptor set that server reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));
}

/// The `ErrorInfo` domain of every Tessera error.
pub const ERROR_DOMAIN: &str = "tessera.auth";
