//! IntrospectToken through the real handler: any token, any type hint, any caller metadata.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera::grpc::pb::{self, auth_service_server::AuthService};
use tessera_fuzz::{Input, Text, check_introspection, harness};

#[derive(Arbitrary, Debug)]
struct Fields {
    token: Text,
    token_type_hint: i32,
}

fuzz_target!(|input: Input<Fields>| {
    let h = harness();
    let Some(request) = input.request(h, |f: &Fields| pb::IntrospectTokenRequest {
        token: f.token.resolve(h),
        token_type_hint: f.token_type_hint,
    }) else {
        return;
    };
    let result = h.run(h.service.introspect_token(request));
    check_introspection(&result);
});
