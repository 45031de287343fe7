//! tessera-client against the real server in-process (port 0), on SQLite, or on PostgreSQL when
//! TESSERA_TEST_DATABASE_URL is set.
#[path = "../../examples/support/listings.rs"]
mod listings;

mod harness;
mod revocation_feed;
mod token_source;
mod verification;
