//! IssueToken through the real handler: any message (wire bytes or fields built from known
//! clients, users and tokens), any `authorization` and `x-forwarded-for` metadata.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera::grpc::pb::{self, auth_service_server::AuthService, issue_token_request::Grant as G};
use tessera_fuzz::{Input, Text, check, harness};

#[derive(Arbitrary, Debug)]
struct Fields {
    client_id: Text,
    client_secret: Option<Text>,
    scope: Option<Text>,
    grant: Option<Grant>,
}

#[derive(Arbitrary, Debug)]
enum Grant {
    ClientCredentials,
    Password {
        username: Text,
        password: Text,
    },
    TokenExchange {
        subject_token: Text,
        subject_token_type: Option<Text>,
    },
    RefreshToken {
        refresh_token: Text,
    },
}

fuzz_target!(|input: Input<Fields>| {
    let h = harness();
    let text = |t: &Option<Text>| t.as_ref().map(|t| t.resolve(h)).unwrap_or_default();
    let Some(request) = input.request(h, |f: &Fields| pb::IssueTokenRequest {
        client_id: f.client_id.resolve(h),
        client_secret: text(&f.client_secret),
        scope: text(&f.scope),
        grant: f.grant.as_ref().map(|g| match g {
            Grant::ClientCredentials => G::ClientCredentials(pb::ClientCredentialsGrant {}),
            Grant::Password { username, password } => G::Password(pb::PasswordGrant {
                username: username.resolve(h),
                password: password.resolve(h),
            }),
            Grant::TokenExchange {
                subject_token,
                subject_token_type,
            } => G::TokenExchange(pb::TokenExchangeGrant {
                subject_token: subject_token.resolve(h),
                subject_token_type: text(subject_token_type),
            }),
            Grant::RefreshToken { refresh_token } => G::RefreshToken(pb::RefreshTokenGrant {
                refresh_token: refresh_token.resolve(h),
            }),
        }),
    }) else {
        return;
    };
    let message = request.get_ref();
    let mut secrets = vec![message.client_secret.clone()];
    match &message.grant {
        Some(G::Password(p)) => secrets.push(p.password.clone()),
        Some(G::TokenExchange(t)) => secrets.push(t.subject_token.clone()),
        Some(G::RefreshToken(r)) => secrets.push(r.refresh_token.clone()),
        _ => {}
    }
    let result = h.run(h.service.issue_token(request));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    check(&result, &secrets);
    if let Ok(response) = &result {
        let response = response.get_ref();
        assert!(response.access_token.starts_with("v4.public."));
        assert_eq!(response.token_type, "bearer");
        assert!(response.expires_in > 0);
    }
});
