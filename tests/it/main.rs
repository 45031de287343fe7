//! Integration tests: the real server on port 0, the real migrations, SQLite by default and
//! PostgreSQL when TESSERA_TEST_DATABASE_URL is set. One binary, so it links once.
mod cleanup;
mod cli;
mod common;
mod health_and_reflection;
mod introspection;
mod issue_token;
mod key_rotation;
mod logging;
mod password_grant;
mod refresh;
mod revocation;
mod throttling;
mod token_exchange;
