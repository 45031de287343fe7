//! `POST /v1/auth/revoke` (SPEC §8, RFC 7009): the caller authenticates as for RevokeToken, or
//! proves the token's session with `Authorization: Bearer` (the Sharetribe SDK's logout).
use axum::{
    extract::{Request, State},
    response::Response,
};
use http::StatusCode;
use secrecy::SecretString;

use super::{
    ApiError, HttpState,
    error::{Challenge, json, no_store},
    form::{ClientCredentials, Form, bearer, challenge_of},
    router::{record_client_id, traced},
};
use crate::domain::DomainError;
use crate::edge::{
    call::{to_completion, within_deadline},
    shape::{MAX_SECRET_LEN, MAX_TOKEN_LEN, Violations, secret},
};

pub async fn revoke(State(state): State<HttpState>, request: Request) -> Response {
    traced("POST /v1/auth/revoke", async move {
        let (parts, body) = request.into_parts();
        let challenge = challenge_of(&parts.headers);
        let revoke = async {
            let mut form = Form::read(&parts.headers, body).await?;
            // token_type_hint is only a hint (RFC 7009 §2.1): every kind of token is looked for.
            let _hint = form.take("token_type_hint");
            let token = form.take("token");
            let client = ClientCredentials::take(&parts.headers, &mut form)?;
            let tokens = state.tokens.clone();
            if client.client_id.is_empty()
                && challenge != Some(Challenge::Basic)
                && let Some(bearer) = bearer(&parts.headers)
            {
                let mut v = Violations::default();
                v.token(&token, "token");
                v.finish()?;
                if bearer.len() > MAX_TOKEN_LEN {
                    return Err(DomainError::InvalidBearer.into());
                }
                let bearer = bearer.to_owned();
                within_deadline(to_completion(async move {
                    tokens.revoke_with_bearer(&bearer, &token).await
                }))
                .await?;
                return Ok(revoked());
            }
            if client.client_id.is_empty() {
                // Neither client credentials nor a bearer: RFC 6749's invalid_client.
                return Err(
                    ApiError::from(DomainError::InvalidClient).challenge(Some(Challenge::Basic))
                );
            }
            record_client_id(&client.client_id);
            let mut v = Violations::default();
            v.client_id(&client.client_id);
            v.max_len(&client.client_secret, MAX_SECRET_LEN, "client_secret");
            v.token(&token, "token");
            v.finish()?;
            let client_secret: Option<SecretString> = secret(client.client_secret);
            let client_id = client.client_id;
            within_deadline(to_completion(async move {
                tokens
                    .revoke(&client_id, client_secret.as_ref(), &token)
                    .await
            }))
            .await?;
            Ok(revoked())
        };
        revoke.await.map_err(|e: ApiError| e.challenge(challenge))
    })
    .await
}

/// RFC 7009 §2.2: 200 with an empty object, whatever the token was.
fn revoked() -> Response {
    let mut response = json(StatusCode::OK, &serde_json::json!({}));
    no_store(response.headers_mut());
    response
}
