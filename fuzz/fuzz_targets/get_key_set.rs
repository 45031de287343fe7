//! GetKeySet through the real handler: any message bytes and metadata, sometimes after a key
//! rotation. The answer is always OK: published keys that parse, exactly one of them signing.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pasetors::{keys::AsymmetricPublicKey, paserk::FormatAsPaserk, version4::V4};
use tessera::{
    domain::{keyring, master_key::MasterKey},
    grpc::pb::{self, auth_service_server::AuthService},
};
use tessera::domain::repository::KeyRepository as _;
use tessera_fuzz::{Message, Metadata, harness};
use tonic::Request;

#[derive(Arbitrary, Debug)]
struct Input {
    message: Message<()>,
    metadata: Metadata,
    /// Rotate the signing key first (at most a few times per process).
    rotate: bool,
}

fuzz_target!(|input: Input| {
    let h = harness();
    let Some(message) = input.message.decode(|_| pb::GetKeySetRequest {}) else {
        return;
    };
    if input.rotate {
        h.run(async {
            if h.store.list_signing_keys().await.expect("keys").len() < 4 {
                let master = MasterKey::from_base64(&h.master_key).expect("master key");
                keyring::rotate(
                    &h.store,
                    &master,
                    std::time::Duration::from_secs(86_400),
                    tessera::domain::clock::now_ms(),
                )
                    .await
                    .expect("rotate");
                h.tokens.keys().follow_rotation().await.expect("follow");
            }
        });
    }
    let mut request = Request::new(message);
    input.metadata.apply(h, &mut request);
    let result = h.run(h.service.get_key_set(request));
    let keys = result.expect("GetKeySet answers OK").into_inner().keys;
    assert!(!keys.is_empty());
    assert_eq!(keys.iter().filter(|k| k.signing).count(), 1, "{keys:?}");
    for key in &keys {
        let public = AsymmetricPublicKey::<V4>::try_from(key.paserk.as_str())
            .unwrap_or_else(|e| panic!("{:?} does not parse: {e}", key.paserk));
        let mut pid = String::new();
        pasetors::paserk::Id::from(&public)
            .fmt(&mut pid)
            .expect("pid");
        assert_eq!(pid, key.kid);
        assert!(key.create_time.is_some());
    }
    assert_eq!(
        keys.iter().find(|k| k.signing).map(|k| &k.kid),
        Some(&h.tokens.keys().signing_kid())
    );
});
