//! What the gRPC and HTTP edges share, so that both apply the same rules: the end user's
//! address that logins are throttled by, the shape checks on what a caller sends, and how a
//! call runs (its deadline, its work run to completion, the outcome its span records), and
//! TLS on their listeners.
//! Neither edge builds the other's answers: each maps a [`crate::domain::DomainError`] itself.
pub mod address;
pub mod call;
pub mod shape;
pub mod tls;
