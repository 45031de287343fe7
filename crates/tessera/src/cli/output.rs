//! Printing results: one JSON value with `--json`, aligned text otherwise.
use serde::Serialize;

/// Prints `value` as one line of JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Unix milliseconds as RFC 3339, for people.
pub fn time(unix_ms: i64) -> String {
    crate::domain::clock::format_rfc3339(unix_ms)
}
