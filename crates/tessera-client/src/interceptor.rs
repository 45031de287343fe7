//! The tonic interceptor that adds a [`TokenSource`]'s bearer to outgoing calls.
use tonic::{Request, Status, service::Interceptor};

use crate::token_source::TokenSource;

/// Adds `authorization: Bearer <token>` to every call:
/// `SomeClient::with_interceptor(channel, token_source.interceptor())`.
///
/// Interceptors cannot wait, so it sends the token the source holds, which a background task
/// renews before it expires. Await [`TokenSource::token`] once at start (it also shows at once
/// whether the credentials work); until then, and whenever the source holds no valid token,
/// calls fail with UNAUTHENTICATED without being sent.
#[derive(Clone, Debug)]
pub struct BearerInterceptor {
    source: TokenSource,
}

impl BearerInterceptor {
    pub(crate) fn new(source: TokenSource) -> Self {
        Self { source }
    }
}

impl Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let authorization = self.source.current_authorization().ok_or_else(|| {
            Status::unauthenticated(
                "the TokenSource holds no valid access token (await TokenSource::token first)",
            )
        })?;
        request
            .metadata_mut()
            .insert("authorization", authorization);
        Ok(request)
    }
}
