//! Tessera: a gRPC authentication service. See README.md and SPEC.md.
pub mod cli;
pub mod config;
pub mod domain;
pub mod edge;
pub mod grpc;
pub mod http;
pub mod server;
pub mod store;
pub mod telemetry;
