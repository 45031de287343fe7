//! Integration tests: the real server on port 0, the real migrations, SQLite by default and
//! PostgreSQL when TESSERA_TEST_DATABASE_URL is set. One binary, so it links once.
mod cleanup;
mod cli;
mod common;
mod database_loss;
mod health_and_reflection;
mod http;
mod http_client;
mod introspection;
mod issue_token;
mod key_rotation;
mod limits;
mod logging;
mod metrics;
mod password_grant;
mod races;
mod refresh;
mod restarts;
mod revocation;
mod scale_out;
mod throttling;
mod tls;
mod token_exchange;
mod traces;
mod watch_revocations;
