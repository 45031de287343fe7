//! IntrospectToken through the real handler: any token, any type hint, any caller metadata.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera::grpc::pb::{self, auth_service_server::AuthService};
use tessera_fuzz::{Message, Metadata, Text, check_introspection, harness};
use tonic::Request;

#[derive(Arbitrary, Debug)]
struct Fields {
    token: Text,
    token_type_hint: i32,
}

#[derive(Arbitrary, Debug)]
struct Input {
    message: Message<Fields>,
    metadata: Metadata,
}

fuzz_target!(|input: Input| {
    let h = harness();
    let Some(message) = input
        .message
        .decode(|f: &Fields| pb::IntrospectTokenRequest {
            token: f.token.resolve(h),
            token_type_hint: f.token_type_hint,
        })
    else {
        return;
    };
    let mut request = Request::new(message);
    input.metadata.apply(h, &mut request);
    let result = h.run(h.service.introspect_token(request));
    check_introspection(&result);
});
