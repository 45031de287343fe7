//! Tessera: a gRPC authentication service. See README.md and SPEC.md.
pub mod cli;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod server;
pub mod store;
pub mod telemetry;
