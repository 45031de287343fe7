//! Shape checks on incoming messages: lengths and required fields, before any domain work.
use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};
use secrecy::SecretString;

use super::pb;
use crate::domain::{
    DomainError, FieldViolation,
    service::{Grant, IssueRequest},
};

/// Longest token accepted anywhere (SPEC §4: 4 KiB).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest username: an e-mail address.
pub use crate::domain::users::{MAX_PASSWORD_CHARS, MAX_USERNAME_LEN};
/// Longest client secret accepted (ours are 43 characters).
pub const MAX_SECRET_LEN: usize = 256;
/// Longest requested scope.
pub const MAX_SCOPE_LEN: usize = 1024;
pub use crate::domain::service::ACCESS_TOKEN_TYPE;

/// Collects every violation of a message, so that one answer names them all.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check(&mut self, ok: bool, field: &'static str, description: &str) {
        if !ok {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    fn required(&mut self, value: &str, field: &'static str) {
        self.check(!value.is_empty(), field, "is required");
    }

    fn max_len(&mut self, value: &str, max: usize, field: &'static str) {
        self.check(
            value.len() <= max,
            field,
            &format!("must be at most {max} bytes"),
        );
    }

    fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidRequest(self.0))
        }
    }
}

/// Checks a client_id: required, and shaped as the UUIDs the server makes.
fn client_id(v: &mut Violations, value: &str) {
    if value.is_empty() {
        v.required(value, "client_id");
    } else {
        v.check(
            value.len() == 36 && uuid::Uuid::try_parse(value).is_ok(),
            "client_id",
            "must be a client id (a UUID)",
        );
    }
}

fn secret(value: String) -> Option<SecretString> {
    (!value.is_empty()).then(|| SecretString::from(value))
}

/// The end user's address that logins are throttled by (SPEC §2): the TCP peer's, or, when
/// the peer is one of the `trusted` proxies, the right-most `x-forwarded-for` entry that no
/// trusted proxy added (entries to its left are the client's to write, so they prove nothing).
/// An IPv6 address stands for its /64, which one host can fill at will.
pub fn end_user_address(
    peer: Option<IpAddr>,
    metadata: &tonic::metadata::MetadataMap,
    trusted: &[IpNet],
) -> Option<String> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if is_trusted(&peer)
        && let Some(client) = forwarded_client(metadata, is_trusted)
    {
        return Some(client);
    }
    Some(throttle_key(peer))
}

/// The end user behind trusted proxies: read right to left (the proxies appended their
/// entries there), the first entry that is no trusted proxy. Entries to its left are the
/// client's to write and are never read. `ip:port`, `[v6]:port` and zone ids are understood; an
/// entry that is no address at all keys the attempt by its own text (so that junk shares a
/// bucket with junk, never with the proxy). `None` when every entry is a trusted proxy.
fn forwarded_client(
    metadata: &tonic::metadata::MetadataMap,
    is_trusted: impl Fn(&IpAddr) -> bool,
) -> Option<String> {
    let mut entries = Vec::new();
    for value in metadata.get_all("x-forwarded-for") {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        entries.extend(text.split(',').map(|e| e.trim().to_owned()));
    }
    for entry in entries.iter().rev().filter(|e| !e.is_empty()) {
        match forwarded_address(entry) {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return Some(throttle_key(ip)),
            None => return Some(entry.chars().take(MAX_FORWARDED_TOKEN).collect()),
        }
    }
    None
}

/// The longest text of an unreadable `x-forwarded-for` entry kept as a throttle key.
const MAX_FORWARDED_TOKEN: usize = 64;

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `fe80::1%eth0`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let host = if let Some(rest) = entry.strip_prefix('[') {
        rest.split(']').next()?
    } else if entry.matches(':').count() == 1 {
        entry.split(':').next()?
    } else {
        entry
    };
    let host = host.split('%').next()?;
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn throttle_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

/// Validates IssueToken and turns it into a domain request.
pub fn issue_request(
    req: pb::IssueTokenRequest,
    end_user_address: Option<String>,
) -> Result<IssueRequest, DomainError> {
    let mut v = Violations::default();
    client_id(&mut v, &req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.max_len(&req.scope, MAX_SCOPE_LEN, "scope");
    use pb::issue_token_request::Grant as G;
    let grant = match req.grant {
        None => {
            v.check(
                false,
                "grant",
                "one of client_credentials, password, token_exchange, refresh_token is required",
            );
            None
        }
        Some(G::ClientCredentials(_)) => Some(Grant::ClientCredentials),
        Some(G::Password(p)) => {
            v.required(p.username.trim(), "password.username");
            v.check(
                !p.username.chars().any(char::is_control),
                "password.username",
                "must not contain control characters",
            );
            v.max_len(&p.username, MAX_USERNAME_LEN, "password.username");
            v.required(&p.password, "password.password");
            v.check(
                p.password.chars().count() <= MAX_PASSWORD_CHARS,
                "password.password",
                "must be at most 128 characters",
            );
            Some(Grant::Password {
                username: p.username,
                password: SecretString::from(p.password),
            })
        }
        Some(G::TokenExchange(t)) => {
            v.required(&t.subject_token, "token_exchange.subject_token");
            v.max_len(
                &t.subject_token,
                MAX_TOKEN_LEN,
                "token_exchange.subject_token",
            );
            v.check(
                t.subject_token_type.is_empty() || t.subject_token_type == ACCESS_TOKEN_TYPE,
                "token_exchange.subject_token_type",
                "must be empty or urn:ietf:params:oauth:token-type:access_token",
            );
            Some(Grant::TokenExchange {
                subject_token: SecretString::from(t.subject_token),
                subject_token_type: t.subject_token_type,
            })
        }
        Some(G::RefreshToken(r)) => {
            v.required(&r.refresh_token, "refresh_token.refresh_token");
            v.max_len(
                &r.refresh_token,
                MAX_TOKEN_LEN,
                "refresh_token.refresh_token",
            );
            Some(Grant::RefreshToken {
                refresh_token: SecretString::from(r.refresh_token),
            })
        }
    };
    v.finish()?;
    Ok(IssueRequest {
        client_id: req.client_id,
        client_secret: secret(req.client_secret),
        scope: req.scope,
        grant: grant.ok_or_else(|| DomainError::invalid_field("grant", "is required"))?,
        end_user_address,
    })
}

/// Validates the token of IntrospectToken.
pub fn introspected_token(req: &pb::IntrospectTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    v.required(&req.token, "token");
    v.max_len(&req.token, MAX_TOKEN_LEN, "token");
    v.finish()
}

/// Validates RevokeToken.
pub fn revoke_request(req: &pb::RevokeTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    client_id(&mut v, &req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.required(&req.token, "token");
    v.max_len(&req.token, MAX_TOKEN_LEN, "token");
    v.finish()
}

/// A client_id fit for a log line: only when it has the shape of one.
pub fn loggable_client_id(value: &str) -> &str {
    if value.len() == 36 && uuid::Uuid::try_parse(value).is_ok() {
        value
    } else {
        "-"
    }
}

/// The secret of a RevokeToken request, if one was sent.
pub fn revoke_secret(req: &mut pb::RevokeTokenRequest) -> Option<SecretString> {
    secret(std::mem::take(&mut req.client_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> tonic::metadata::MetadataMap {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("x-forwarded-for", value.parse().expect("header"));
        metadata
    }

    #[test]
    fn an_untrusted_caller_is_throttled_by_its_own_address_whatever_it_forwards() {
        let peer = Some("198.51.100.9".parse().expect("ip"));
        let spoofed = forwarded("203.0.113.7");
        assert_eq!(
            end_user_address(peer, &spoofed, &[]).as_deref(),
            Some("198.51.100.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_counts() {
        let trusted = crate::config::trusted_proxies("10.0.0.0/8, 127.0.0.1").expect("nets");
        let peer = Some("127.0.0.1".parse().expect("ip"));
        // The client wrote the left-most entry itself: it proves nothing.
        let chain = forwarded("1.2.3.4, 203.0.113.7, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &chain, &trusted).as_deref(),
            Some("203.0.113.7")
        );
        // Nobody but proxies in the chain: the peer is the caller.
        let all_trusted = forwarded("10.1.1.1, 10.0.0.7");
        assert_eq!(
            end_user_address(peer, &all_trusted, &trusted).as_deref(),
            Some("127.0.0.1")
        );
        // Junk to the left of the real address is never read.
        let junk_left = forwarded("junk, 203.0.113.7:5678, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &junk_left, &trusted).as_deref(),
            Some("203.0.113.7")
        );
        // Junk where the client should be keys by itself, never by the proxy.
        let junk = forwarded("unknown, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &junk, &trusted).as_deref(),
            Some("unknown")
        );
        for (entry, key) in [
            ("[2001:db8::1]:443", "2001:db8::/64"),
            ("fe80::1%eth0", "fe80::/64"),
            ("198.51.100.5:80", "198.51.100.5"),
        ] {
            let value = forwarded(&format!("{entry}, 10.0.0.5"));
            assert_eq!(
                end_user_address(peer, &value, &trusted).as_deref(),
                Some(key)
            );
        }
    }

    #[test]
    fn an_ipv6_address_stands_for_its_64() {
        let peer = Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip"));
        assert_eq!(
            end_user_address(peer, &tonic::metadata::MetadataMap::new(), &[]).as_deref(),
            Some("2001:db8:1:2::/64")
        );
        let mapped = Some("::ffff:192.0.2.1".parse().expect("ip"));
        assert_eq!(
            end_user_address(mapped, &tonic::metadata::MetadataMap::new(), &[]).as_deref(),
            Some("192.0.2.1")
        );
    }
}
