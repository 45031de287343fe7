//! sea-orm entities, one per table. Generated shape only: queries live in `store/`.
pub mod clients;
pub mod login_throttles;
pub mod refresh_tokens;
pub mod revocation_log;
pub mod sessions;
pub mod signing_keys;
pub mod users;
