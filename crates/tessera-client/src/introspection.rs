//! IntrospectToken, the fallback of a verifier whose revocation feed went silent: the server
//! says whether the token is active, revocations included.
use tessera_proto::pb::{self, TokenType};
use tonic::Request;

use crate::{
    claims::{Claims, Fields},
    revocations::timestamp_ms,
    token_source::TokenSource,
    transport::{Transport, auth_client},
};

/// Asks Tessera about `token`, authenticated as `credentials` when given. `Ok(None)`: not an
/// active access token.
pub(crate) async fn introspect(
    transport: &Transport,
    credentials: Option<&TokenSource>,
    token: &str,
) -> Result<Option<Claims>, tonic::Status> {
    let mut request = Request::new(pb::IntrospectTokenRequest {
        token: token.to_owned(),
        token_type_hint: pb::TokenTypeHint::AccessToken as i32,
    });
    if let Some(source) = credentials {
        let authorization = source
            .token()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?
            .authorization();
        request
            .metadata_mut()
            .insert("authorization", authorization);
    }
    let answer = auth_client(transport)
        .introspect_token(request)
        .await?
        .into_inner();
    if !answer.active || answer.token_type != TokenType::AccessToken as i32 {
        return Ok(None);
    }
    let issued_at = answer.issue_time.as_ref().map_or(0, timestamp_ms);
    Ok(Some(Claims::new(Fields {
        issuer: answer.iss,
        subject: answer.sub,
        client_id: answer.client_id,
        scope: answer.scope,
        jti: answer.jti,
        sid: Some(answer.sid).filter(|sid| !sid.is_empty()),
        issued_at,
        not_before: issued_at,
        expires_at: answer.expire_time.as_ref().map_or(0, timestamp_ms),
    })))
}
