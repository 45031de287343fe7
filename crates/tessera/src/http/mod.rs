//! The HTTP edge (SPEC §8): the Sharetribe Authentication API's shape over the same domain
//! calls as gRPC, so that the Sharetribe SDKs and any OAuth 2.0 client work unchanged. Form
//! requests in, JSON answers out; `error` is the one place that builds an error answer.
mod cors;
mod error;
mod form;
mod health;
mod introspect;
mod keys;
mod revoke;
mod router;
mod serve;
mod token;
mod trace;

pub use cors::cors_layer;
pub use error::ApiError;
pub use router::{HttpState, router};
pub use serve::serve;
