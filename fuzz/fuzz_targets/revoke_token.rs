//! RevokeToken through the real handler: any token of any client, any credentials.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera::grpc::pb::{self, auth_service_server::AuthService};
use tessera_fuzz::{Input, Text, check, harness};

#[derive(Arbitrary, Debug)]
struct Fields {
    token: Text,
    token_type_hint: i32,
    client_id: Text,
    client_secret: Option<Text>,
}

fuzz_target!(|input: Input<Fields>| {
    let h = harness();
    let Some(request) = input.request(h, |f: &Fields| pb::RevokeTokenRequest {
        token: f.token.resolve(h),
        token_type_hint: f.token_type_hint,
        client_id: f.client_id.resolve(h),
        client_secret: f
            .client_secret
            .as_ref()
            .map(|t| t.resolve(h))
            .unwrap_or_default(),
    }) else {
        return;
    };
    let message = request.get_ref();
    let secrets = [message.client_secret.clone(), message.token.clone()];
    let result = h.run(h.service.revoke_token(request));
    check(&result, &[&secrets[0], &secrets[1]]);
});
