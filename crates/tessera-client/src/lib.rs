//! Trust Tessera's access tokens without a network call per request.
//!
//! Tessera issues PASETO `v4.public` access tokens. A service that links this crate:
//!
//! - verifies them offline with a [`Verifier`]: the public keys come from `GetKeySet` at start
//!   (fetched again when a token names a key not seen yet: a rotation), and the server's rules
//!   apply (issuer, `iat`/`nbf`/`exp` with the clock leeway, the footer's `kid` only choosing
//!   among known keys). Revocations (logouts, disabled users and clients) arrive within a second
//!   from the `WatchRevocations` feed, which the verifier follows and resumes after any break
//!   without missing one. When the feed goes silent for a configured number of heartbeats, the
//!   verifier fails closed (default) or asks `IntrospectToken` per request;
//! - guards a tonic server (or any tower-based HTTP server) with an [`AuthLayer`]: the bearer
//!   token is verified, its [`Claims`] put in the request's extensions; UNAUTHENTICATED (401)
//!   for a missing or bad token, PERMISSION_DENIED (403) for a missing scope, such as
//!   `trusted:user` for the privileged operations of the Sharetribe model;
//! - calls other services as an integration client with a [`TokenSource`] (client_credentials,
//!   renewed before expiry, one renewal for any number of concurrent callers) and its
//!   [`BearerInterceptor`].
//!
//! The whole of it, against a Tessera on port 0 (the example service in `examples/` is the
//! same thing as a program):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tessera = tessera_testkit::TestApp::spawn().await;
//! # let (client_id, client_secret) = tessera.integration_client().await;
//! # let market = tessera.marketplace_client().await;
//! # let channel = tessera.channel();
//! use tessera_client::{AuthLayer, Claims, TokenSource, Verifier};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! // This service's own identity, for the revocation feed.
//! let credentials = TokenSource::builder(channel.clone(), client_id, client_secret).build();
//! let verifier = Verifier::builder(channel).credentials(credentials).start().await?;
//!
//! // Any tower service: here one that greets the token's subject.
//! let greet = service_fn(|request: http::Request<String>| async move {
//!     let claims = request.extensions().get::<Claims>().cloned();
//!     let subject = claims.map(|c| c.subject().to_owned()).unwrap_or_default();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {subject}")))
//! });
//! let mut service = AuthLayer::new(verifier).require_scope("public-read").layer(greet);
//!
//! let token = tessera.anonymous_token(&market).await;
//! let request = http::Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(String::new())?;
//! let response = service.ready().await?.call(request).await?;
//! assert_eq!(response.body(), &format!("hello {market}"));
//!
//! let no_token = http::Request::new(String::new());
//! let response = service.ready().await?.call(no_token).await?;
//! assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! The crate depends on Tessera's contract ([`tessera_proto`]) only, never on the server.
mod claims;
mod feed;
mod interceptor;
mod introspection;
mod keys;
mod layer;
mod paseto;
mod rejection;
mod revocations;
mod token_source;
mod transport;
mod verified_cache;
mod verifier;

pub use claims::{Claims, INTEG, MissingScope, PUBLIC_READ, TRUSTED_USER, USER};
pub use interceptor::BearerInterceptor;
pub use keys::KeySetError;
pub use layer::{AuthLayer, AuthService};
pub use token_source::{AccessToken, TokenSource, TokenSourceBuilder, TokenSourceError};
pub use transport::{Transport, TransportError, transport};
pub use verifier::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_ISSUER,
    DEFAULT_KEY_REFETCH_INTERVAL, DEFAULT_LEEWAY, DEFAULT_MISSED_HEARTBEATS, StartError, Verifier,
    VerifierBuilder, VerifyError, WhenStale,
};
