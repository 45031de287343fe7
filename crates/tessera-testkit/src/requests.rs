//! Requests as callers send them: one builder per grant, RevokeToken and IntrospectToken.
use tessera_proto::pb::{self, auth_service_client::AuthServiceClient};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

pub fn password_grant(client_id: &str, username: &str, password: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        grant: Some(pb::issue_token_request::Grant::Password(
            pb::PasswordGrant {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )),
        ..Default::default()
    }
}

pub fn refresh_grant(client_id: &str, secret: &str, refresh_token: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        grant: Some(pb::issue_token_request::Grant::RefreshToken(
            pb::RefreshTokenGrant {
                refresh_token: refresh_token.to_owned(),
            },
        )),
        ..Default::default()
    }
}

pub fn client_credentials(client_id: &str, secret: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        scope: String::new(),
        grant: Some(pb::issue_token_request::Grant::ClientCredentials(
            pb::ClientCredentialsGrant {},
        )),
    }
}

/// IntrospectToken on any channel, as the holder of `bearer` (or as nobody).
pub async fn introspect_on(
    channel: &Channel,
    bearer: Option<&str>,
    token: &str,
) -> Result<pb::IntrospectTokenResponse, Status> {
    let request = match bearer {
        Some(bearer) => {
            let authorization = format!("Bearer {bearer}").parse().expect("header");
            introspect_request(&authorization, token)
        }
        None => Request::new(pb::IntrospectTokenRequest {
            token: token.to_owned(),
            token_type_hint: 0,
        }),
    };
    AuthServiceClient::new(channel.clone())
        .introspect_token(request)
        .await
        .map(|r| r.into_inner())
}

/// A RevokeToken request.
pub fn revoke_request(client_id: &str, secret: &str, token: &str) -> pb::RevokeTokenRequest {
    pb::RevokeTokenRequest {
        token: token.into(),
        token_type_hint: 0,
        client_id: client_id.into(),
        client_secret: secret.into(),
    }
}

/// An IntrospectToken request carrying `authorization` (a whole `Bearer ...` value).
pub fn introspect_request(
    authorization: &MetadataValue<Ascii>,
    token: &str,
) -> Request<pb::IntrospectTokenRequest> {
    let mut request = Request::new(pb::IntrospectTokenRequest {
        token: token.to_owned(),
        token_type_hint: 0,
    });
    request
        .metadata_mut()
        .insert("authorization", authorization.clone());
    request
}
