//! `tessera.auth.v1.AuthService`: each RPC validates its message, calls the domain, and
//! translates the answer. One tracing span per RPC with method, client_id and outcome.
use std::{future::Future, sync::Arc};

use prost_types::Timestamp;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};

use super::{pb, request, watch};
use crate::config::IntrospectionAuth;
use crate::domain::{
    DomainError, TokenService,
    service::{ActiveToken, TokenKind},
};
use crate::edge::call::{self, to_completion};

/// The gRPC face of [`TokenService`].
#[derive(Clone, Debug)]
pub struct AuthServiceImpl {
    tokens: Arc<TokenService>,
    introspection_auth: IntrospectionAuth,
    /// One permit per `WatchRevocations` stream.
    watch_streams: Arc<Semaphore>,
    /// Proxies whose `x-forwarded-for` is believed.
    trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl AuthServiceImpl {
    pub fn new(tokens: Arc<TokenService>, introspection_auth: IntrospectionAuth) -> Self {
        Self {
            tokens,
            introspection_auth,
            watch_streams: Arc::new(Semaphore::new(watch::DEFAULT_MAX_STREAMS)),
            trusted_proxies: Arc::from([]),
        }
    }

    /// Believes `x-forwarded-for` from these proxies only (`TESSERA_TRUSTED_PROXIES`).
    pub fn with_trusted_proxies(mut self, proxies: &[ipnet::IpNet]) -> Self {
        self.trusted_proxies = Arc::from(proxies);
        self
    }

    /// Holds at most `max` `WatchRevocations` streams at once (`TESSERA_MAX_WATCH_STREAMS`).
    pub fn with_max_watch_streams(mut self, max: usize) -> Self {
        self.watch_streams = Arc::new(Semaphore::new(max));
        self
    }

    /// Checks an IntrospectToken or WatchRevocations caller; returns who it is.
    async fn authorize_caller<T>(&self, req: &Request<T>) -> Result<Caller, DomainError> {
        match self.introspection_auth {
            IntrospectionAuth::None => Ok(Caller::default()),
            IntrospectionAuth::Mtls => match request::client_certificate_holder(req) {
                Some(holder) => Ok(Caller {
                    client_id: String::new(),
                    certificate: Some(holder),
                }),
                None => self.authorize_bearer(req).await,
            },
            IntrospectionAuth::Bearer => self.authorize_bearer(req).await,
        }
    }

    async fn authorize_bearer<T>(&self, req: &Request<T>) -> Result<Caller, DomainError> {
        if bearer(req).is_some_and(|t| t.len() > request::MAX_TOKEN_LEN) {
            return Err(DomainError::CallerNotAllowed);
        }
        let client_id = self.tokens.authorize_introspection(bearer(req)).await?;
        Ok(Caller {
            client_id,
            certificate: None,
        })
    }
}

/// Who an IntrospectToken or WatchRevocations caller is: the client_id of its bearer token,
/// or the holder of its client certificate (both empty when callers are not checked).
#[derive(Debug, Default)]
struct Caller {
    client_id: String,
    certificate: Option<String>,
}

impl Caller {
    /// What the RPC's span records: the client_id and the certificate holder, empty when
    /// the caller was refused.
    fn logged(caller: &Result<Caller, DomainError>) -> (String, Option<String>) {
        match caller {
            Ok(caller) => (caller.client_id.clone(), caller.certificate.clone()),
            Err(_) => (String::new(), None),
        }
    }
}

pub use crate::edge::call::RPC_DEADLINE;

/// Runs one RPC inside its span, within the deadline, and records how it ended (the series
/// of every call are recorded by [`super::observe`]).
async fn traced<T>(
    method: &'static str,
    client_id: &str,
    work: impl Future<Output = Result<T, DomainError>>,
) -> Result<Response<T>, Status> {
    traced_by(method, client_id, None, work).await
}

/// [`traced`], for a caller that may be known by its client certificate: the span also
/// records the certificate's holder (`client_cert`).
async fn traced_by<T>(
    method: &'static str,
    client_id: &str,
    client_cert: Option<&str>,
    work: impl Future<Output = Result<T, DomainError>>,
) -> Result<Response<T>, Status> {
    let span = tracing::info_span!(
        "rpc",
        method,
        client_id = request::loggable_client_id(client_id),
        client_cert = Empty,
        outcome = Empty
    );
    if let Some(holder) = client_cert {
        span.record("client_cert", holder);
    }
    async move {
        let result = call::within_deadline(work).await;
        call::record_outcome("rpc", &result);
        result.map(Response::new).map_err(Status::from)
    }
    .instrument(span)
    .await
}

pub(crate) fn timestamp(unix_ms: i64) -> Timestamp {
    Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: (unix_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn introspection_response(active: Option<ActiveToken>) -> pb::IntrospectTokenResponse {
    let Some(t) = active else {
        return pb::IntrospectTokenResponse::default();
    };
    pb::IntrospectTokenResponse {
        active: true,
        scope: t.scope,
        client_id: t.client_id,
        sub: t.sub,
        sid: t.sid.unwrap_or_default(),
        jti: t.jti.unwrap_or_default(),
        iss: t.iss,
        token_type: match t.kind {
            TokenKind::Access => pb::TokenType::AccessToken,
            TokenKind::Refresh => pb::TokenType::RefreshToken,
        } as i32,
        expire_time: Some(timestamp(t.expires_at)),
        issue_time: Some(timestamp(t.issued_at)),
    }
}

/// The token of an `authorization: Bearer <token>` header, if there is one.
fn bearer<T>(req: &Request<T>) -> Option<&str> {
    let value = req.metadata().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for AuthServiceImpl {
    async fn issue_token(
        &self,
        req: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        // Only logins are throttled by address.
        let address = match req.get_ref().grant {
            Some(pb::issue_token_request::Grant::Password(_)) => {
                let peer = req.remote_addr().map(|addr| addr.ip());
                request::end_user_address(peer, req.metadata().as_ref(), &self.trusted_proxies)
            }
            _ => None,
        };
        let req = req.into_inner();
        let client_id = req.client_id.clone();
        let tokens = self.tokens.clone();
        traced("IssueToken", &client_id, async move {
            let request = request::issue_request(req, address)?;
            let issued = to_completion(async move { tokens.issue(request).await }).await?;
            Ok(pb::IssueTokenResponse {
                access_token: issued.access_token,
                token_type: "bearer".into(),
                expires_in: issued.expires_in_secs,
                refresh_token: issued.refresh_token.unwrap_or_default(),
                scope: issued.scope,
                issued_token_type: issued.issued_token_type.unwrap_or_default(),
            })
        })
        .await
    }

    async fn introspect_token(
        &self,
        req: Request<pb::IntrospectTokenRequest>,
    ) -> Result<Response<pb::IntrospectTokenResponse>, Status> {
        let caller = self.authorize_caller(&req).await;
        let (caller_id, certificate) = Caller::logged(&caller);
        let req = req.into_inner();
        traced_by(
            "IntrospectToken",
            &caller_id,
            certificate.as_deref(),
            async {
                caller?;
                request::introspected_token(&req)?;
                Ok(introspection_response(
                    self.tokens.introspect(&req.token).await?,
                ))
            },
        )
        .await
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let mut req = req.into_inner();
        let client_id = req.client_id.clone();
        let tokens = self.tokens.clone();
        traced("RevokeToken", &client_id, async move {
            request::revoke_request(&req)?;
            let secret = request::revoke_secret(&mut req);
            to_completion(async move {
                tokens
                    .revoke(&req.client_id, secret.as_ref(), &req.token)
                    .await
            })
            .await?;
            Ok(pb::RevokeTokenResponse {})
        })
        .await
    }

    async fn get_key_set(
        &self,
        _req: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::GetKeySetResponse>, Status> {
        traced("GetKeySet", "", async {
            let keys = self.tokens.key_set().await?;
            Ok(pb::GetKeySetResponse {
                keys: keys
                    .into_iter()
                    .map(|k| pb::PublicKey {
                        kid: k.kid,
                        paserk: k.paserk,
                        create_time: Some(timestamp(k.created_at)),
                        retire_time: k.retire_at.map(timestamp),
                        signing: k.signing,
                    })
                    .collect(),
            })
        })
        .await
    }

    type WatchRevocationsStream = watch::WatchStream;

    async fn watch_revocations(
        &self,
        req: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let caller = self.authorize_caller(&req).await;
        let (caller_id, certificate) = Caller::logged(&caller);
        let after_sequence = req.get_ref().after_sequence;
        let tokens = self.tokens.clone();
        let streams = self.watch_streams.clone();
        traced_by(
            "WatchRevocations",
            &caller_id,
            certificate.as_deref(),
            async move {
                caller?;
                let permit = streams
                    .try_acquire_owned()
                    .map_err(|_| DomainError::SlowDown {
                        retry_after: std::time::Duration::from_secs(1),
                    })?;
                let subscription = tokens.watch_revocations(after_sequence)?;
                Ok(watch::start(tokens, subscription, after_sequence, permit))
            },
        )
        .await
    }
}
