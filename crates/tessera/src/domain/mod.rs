//! Grants, sessions, tokens, secret hashing: the logic of Tessera, over the repository traits
//! it owns (`repository`) and a clock it is given (`clock`). It knows nothing of sea-orm or
//! gRPC.
pub mod cleanup;
pub mod client_auth;
pub mod client_secret;
pub mod clients;
pub mod clock;
pub mod error;
pub mod hashing;
pub mod keyring;
pub mod master_key;
pub mod policy;
pub mod random;
pub mod repository;
pub mod revocation_view;
pub mod scope;
pub mod service;
pub mod throttle;
pub mod token;
pub mod users;
pub mod verified_tokens;

pub use error::{DomainError, FieldViolation};

#[cfg(test)]
mod memory_repository;
#[cfg(test)]
mod tests;
pub use service::TokenService;
