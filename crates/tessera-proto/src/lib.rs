//! Tessera's gRPC contract, `proto/tessera/auth/v1/auth.proto`, compiled: the messages, the
//! `AuthService` client and server stubs, and the descriptor set that server reflection serves.
//! Shared by the server, the benchmarks and any Rust program that calls Tessera.
pub mod codec;

/// Code generated from `proto/tessera/auth/v1/auth.proto`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("tessera.auth.v1");

    /// The encoded descriptor set that server reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));
}

/// The `ErrorInfo` domain of every Tessera error (SPEC §4).
pub const ERROR_DOMAIN: &str = "tessera.auth";
