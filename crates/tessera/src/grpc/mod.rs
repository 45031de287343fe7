//! The gRPC edge: proto <-> domain translation, and the one place that builds a `Status`.
pub mod auth_service;
pub mod health;
pub mod observe;
pub mod request;
pub mod status;
pub mod watch;

pub use tessera_proto::{ERROR_DOMAIN, pb};
