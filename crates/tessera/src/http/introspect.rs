//! `POST /v1/auth/introspect` (SPEC §8, RFC 7662): the caller authenticates as for
//! IntrospectToken (`Authorization: Bearer <integ access token>`, unless
//! `TESSERA_INTROSPECTION_AUTH=none`).
use axum::{
    extract::{Request, State},
    response::Response,
};
use http::StatusCode;

use super::{
    ApiError, HttpState,
    error::{Challenge, json, no_store},
    form::{Form, bearer},
    keys::rfc3339,
    router::{record_client_id, traced},
};
use crate::config::IntrospectionAuth;
use crate::domain::{
    DomainError,
    service::{ActiveToken, TokenKind},
};
use crate::edge::{call::within_deadline, shape::Violations};

pub async fn introspect(State(state): State<HttpState>, request: Request) -> Response {
    traced("POST /v1/auth/introspect", async move {
        let (parts, body) = request.into_parts();
        let work = async {
            let caller = match state.introspection_auth {
                IntrospectionAuth::None => String::new(),
                // The HTTP listener does not take a client certificate for a credential.
                IntrospectionAuth::Bearer | IntrospectionAuth::Mtls => {
                    let bearer = bearer(&parts.headers);
                    if bearer.is_some_and(|t| t.len() > crate::edge::shape::MAX_TOKEN_LEN) {
                        return Err(DomainError::CallerNotAllowed.into());
                    }
                    within_deadline(state.tokens.authorize_introspection(bearer)).await?
                }
            };
            record_client_id(&caller);
            let mut form = Form::read(&parts.headers, body).await?;
            let token = form.take("token");
            let mut v = Violations::default();
            v.token(&token, "token");
            v.finish()?;
            let active = within_deadline(state.tokens.introspect(&token)).await?;
            let mut response = json(StatusCode::OK, &answer(active));
            no_store(response.headers_mut());
            Ok(response)
        };
        work.await
            .map_err(|e: ApiError| e.challenge(Some(Challenge::Bearer)))
    })
    .await
}

/// RFC 7662 §2.2: `{"active": false}` alone for anything inactive.
fn answer(active: Option<ActiveToken>) -> serde_json::Value {
    let Some(t) = active else {
        return serde_json::json!({ "active": false });
    };
    let mut body = serde_json::json!({
        "active": true,
        "scope": t.scope,
        "client_id": t.client_id,
        "sub": t.sub,
        "iss": t.iss,
        "token_type": match t.kind {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        },
        "exp": t.expires_at.div_euclid(1000),
        "iat": t.issued_at.div_euclid(1000),
        "expire_time": rfc3339(t.expires_at),
        "issue_time": rfc3339(t.issued_at),
    });
    if let Some(sid) = t.sid {
        body["sid"] = sid.into();
    }
    if let Some(jti) = t.jti {
        body["jti"] = jti.into();
    }
    body
}
