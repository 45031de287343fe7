//! What Tessera's tests, benches and fuzz targets share: a database of their own (a temp SQLite
//! file or a fresh PostgreSQL database), the real server on 127.0.0.1:0, registered clients and
//! users, request builders and assertions on statuses.
//!
//! Not part of the product: nothing here is reachable from the `tessera` crate's API.
mod app;
mod database;
mod fixtures;
mod requests;
mod status;
pub mod tls;

pub use app::{TestApp, test_config};
pub use database::TestDb;
pub use fixtures::{Fixture, PASSWORD, create_users, master_key, register};
pub use requests::{
    client_credentials, introspect_on, introspect_request, password_grant, refresh_grant,
    revoke_request,
};
pub use status::{
    assert_error, assert_inactive, assert_invalid_client, assert_invalid_grant,
    assert_invalid_request, assert_invalid_scope, assert_slow_down, assert_unauthorized_client,
    describe, reason_of, retry_after,
};

/// The repository traits, for tests that read or write the database behind the server's back
/// through `TestApp::store`: `use tessera_testkit::prelude::*;`.
pub mod prelude {
    pub use tessera::domain::repository::{
        CleanupRepository as _, ClientRepository as _, KeyRepository as _, RevocationLog as _,
        SessionRepository as _, ThrottleRepository as _, UserRepository as _,
    };
}
