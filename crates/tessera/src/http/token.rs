//! `POST /v1/auth/token` (SPEC §8, RFC 6749 §4 and §5, RFC 8693): the four grants of
//! IssueToken, from a form.
use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};
use http::StatusCode;

use super::{
    ApiError, HttpState,
    error::{json, no_store},
    form::{ClientCredentials, Form, challenge_of},
    router::{record_client_id, traced},
};
use crate::domain::service::IssuedToken;
use crate::edge::{
    address::end_user_address,
    call::{to_completion, within_deadline},
    shape::{self, FieldNames, GrantFields, IssueFields},
};

/// RFC 8693's grant type URN, accepted beside Sharetribe's `token_exchange`.
const TOKEN_EXCHANGE_URN: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The form's parameter names, as error descriptions name them.
const FIELDS: FieldNames = FieldNames {
    grant: "grant_type",
    username: "username",
    password: "password",
    subject_token: "subject_token",
    subject_token_type: "subject_token_type",
    refresh_token: "refresh_token",
};

pub async fn token(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    traced("POST /v1/auth/token", async move {
        let (parts, body) = request.into_parts();
        let challenge = challenge_of(&parts.headers);
        let issue = async {
            let mut form = Form::read(&parts.headers, body).await?;
            let client = ClientCredentials::take(&parts.headers, &mut form)?;
            record_client_id(&client.client_id);
            let grant = match form.take("grant_type").as_str() {
                "" => None,
                "client_credentials" => Some(GrantFields::ClientCredentials),
                "password" => Some(GrantFields::Password {
                    username: form.take("username"),
                    password: form.take("password"),
                }),
                "token_exchange" | TOKEN_EXCHANGE_URN => Some(GrantFields::TokenExchange {
                    subject_token: form.take("subject_token"),
                    subject_token_type: form.take("subject_token_type"),
                }),
                "refresh_token" => Some(GrantFields::RefreshToken {
                    refresh_token: form.take("refresh_token"),
                }),
                _ => return Err(ApiError::unsupported_grant_type()),
            };
            // Only logins are throttled by address.
            let address = matches!(grant, Some(GrantFields::Password { .. }))
                .then(|| end_user_address(Some(peer.ip()), &parts.headers, &state.trusted_proxies))
                .flatten();
            let fields = IssueFields {
                client_id: client.client_id,
                client_secret: client.client_secret,
                scope: form.take("scope"),
                grant,
            };
            let request = shape::issue_request(fields, &FIELDS, address)?;
            let tokens = state.tokens.clone();
            let issued =
                within_deadline(to_completion(async move { tokens.issue(request).await })).await?;
            Ok(answer(issued))
        };
        issue.await.map_err(|e: ApiError| e.challenge(challenge))
    })
    .await
}

/// RFC 6749 §5.1: the token, never cached.
fn answer(issued: IssuedToken) -> Response {
    let mut body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in_secs,
        "scope": issued.scope,
    });
    if let Some(refresh_token) = issued.refresh_token {
        body["refresh_token"] = refresh_token.into();
    }
    if let Some(issued_token_type) = issued.issued_token_type {
        body["issued_token_type"] = issued_token_type.into();
    }
    let mut response = json(StatusCode::OK, &body);
    no_store(response.headers_mut());
    response
}
