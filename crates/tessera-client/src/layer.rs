//! The tower layer that guards a server: `authorization: Bearer` verified, the claims put in
//! the request's extensions, scopes required per operation.
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::header::AUTHORIZATION;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    claims::Claims,
    rejection::{Refusal, is_grpc},
    verifier::Verifier,
};

/// Guards every request of the service it wraps: a request without a valid bearer token gets
/// UNAUTHENTICATED (HTTP 401), one whose token lacks a required scope PERMISSION_DENIED
/// (HTTP 403), and while revocations cannot be checked (a silent feed, failing closed)
/// UNAVAILABLE (HTTP 503). A request let through carries the token's [`Claims`] in its
/// extensions.
///
/// Scopes are required by path: `require_scope` for every request, `require_scope_for` for
/// one gRPC method (`/package.Service/Method`) or, with a path ending in `/`, every path under
/// it. A request must hold every scope that applies to it. `trusted:user` counts as `user`.
///
/// ```no_run
/// # async fn serve(verifier: tessera_client::Verifier) {
/// use tessera_client::AuthLayer;
///
/// let auth = AuthLayer::new(verifier)
///     .skip("/grpc.health.v1.Health/")
///     .require_scope_for("/example.listings.v1.Listings/Close", "trusted:user");
/// // tonic::transport::Server::builder().layer(auth).add_service(...)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: Verifier,
    rules: Arc<Rules>,
}

#[derive(Clone, Debug, Default)]
struct Rules {
    /// Paths (exact, or prefixes ending in `/`) that need no token at all.
    skipped: Vec<String>,
    /// Scopes by path (`None`: every path).
    scopes: Vec<(Option<String>, String)>,
}

fn matches(pattern: &str, path: &str) -> bool {
    if pattern.ends_with('/') {
        path.starts_with(pattern)
    } else {
        path == pattern
    }
}

impl Rules {
    fn skips(&self, path: &str) -> bool {
        self.skipped.iter().any(|p| matches(p, path))
    }

    /// The first scope that applies to `path` and that `claims` lack.
    fn missing_scope(&self, path: &str, claims: &Claims) -> Option<&str> {
        self.scopes
            .iter()
            .filter(|(pattern, _)| pattern.as_deref().is_none_or(|p| matches(p, path)))
            .map(|(_, scope)| scope.as_str())
            .find(|scope| !claims.has_scope(scope))
    }
}

impl AuthLayer {
    /// Every request needs a valid token; no scope is required until asked for.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            rules: Arc::default(),
        }
    }

    fn with_rules(mut self, change: impl FnOnce(&mut Rules)) -> Self {
        change(Arc::make_mut(&mut self.rules));
        self
    }

    /// Every request needs `scope`.
    pub fn require_scope(self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        self.with_rules(|rules| rules.scopes.push((None, scope)))
    }

    /// Requests to `path` (a gRPC method `/package.Service/Method`, or a prefix ending in `/`)
    /// need `scope`: `require_scope_for("/shop.v1.Orders/Refund", "trusted:user")`.
    pub fn require_scope_for(self, path: impl Into<String>, scope: impl Into<String>) -> Self {
        let (path, scope) = (path.into(), scope.into());
        self.with_rules(|rules| rules.scopes.push((Some(path), scope)))
    }

    /// Requests to `path` (exact, or a prefix ending in `/`) pass without a token, such as
    /// health checks.
    pub fn skip(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.with_rules(|rules| rules.skipped.push(path))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// The service an [`AuthLayer`] makes.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    verifier: Verifier,
    rules: Arc<Rules>,
}

/// The bearer token of a request, if it has one.
fn bearer<B>(request: &http::Request<B>) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (verifier, rules) = (self.verifier.clone(), self.rules.clone());
        Box::pin(async move {
            let path = request.uri().path();
            if rules.skips(path) {
                return inner.call(request).await;
            }
            let grpc = is_grpc(&request);
            let Some(token) = bearer(&request) else {
                return Ok(Refusal::InvalidToken("a bearer token is required").response(grpc));
            };
            let claims = match verifier.verify(token).await {
                Ok(claims) => claims,
                Err(error) if error.is_unavailable() => {
                    return Ok(Refusal::Unavailable.response(grpc));
                }
                Err(error) => {
                    tracing::debug!(%error, "request refused");
                    return Ok(
                        Refusal::InvalidToken("the bearer token is not valid").response(grpc)
                    );
                }
            };
            if let Some(scope) = rules.missing_scope(path, &claims) {
                return Ok(Refusal::InsufficientScope(scope.to_owned()).response(grpc));
            }
            request.extensions_mut().insert(claims);
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::tests::claims;

    #[test]
    fn every_scope_that_applies_to_a_path_is_needed() {
        let rules = Rules {
            skipped: vec!["/grpc.health.v1.Health/".into()],
            scopes: vec![
                (None, "user".into()),
                (Some("/shop.Orders/Refund".into()), "trusted:user".into()),
                (Some("/admin/".into()), "integ".into()),
            ],
        };
        assert!(rules.skips("/grpc.health.v1.Health/Check"));
        assert!(!rules.skips("/shop.Orders/Refund"));
        assert_eq!(
            rules.missing_scope("/shop.Orders/Get", &claims("user")),
            None
        );
        assert_eq!(
            rules.missing_scope("/shop.Orders/Refund", &claims("user")),
            Some("trusted:user")
        );
        assert_eq!(
            rules.missing_scope("/shop.Orders/Refund", &claims("trusted:user")),
            None
        );
        assert_eq!(
            rules.missing_scope("/admin/x", &claims("user")),
            Some("integ")
        );
        assert_eq!(
            rules.missing_scope("/x", &claims("public-read")),
            Some("user")
        );
    }

    #[test]
    fn the_bearer_is_read_from_the_authorization_header_only() {
        let with = |value: &str| {
            http::Request::builder()
                .header(AUTHORIZATION, value)
                .body(())
                .expect("request")
        };
        assert_eq!(bearer(&with("Bearer v4.public.x")), Some("v4.public.x"));
        assert_eq!(bearer(&with("bearer v4.public.x")), Some("v4.public.x"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
        assert_eq!(bearer(&http::Request::new(())), None);
    }
}
