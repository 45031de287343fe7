//! The four grants of IssueToken (SPEC §2), one module each.
mod client_credentials;
mod password;
mod refresh;
mod token_exchange;
