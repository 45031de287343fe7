//! Scopes: what a grant gives, and narrowing it to what the client asked for.
use super::DomainError;

pub const PUBLIC_READ: &str = "public-read";
pub const USER: &str = "user";
pub const TRUSTED_USER: &str = "trusted:user";
pub const INTEG: &str = "integ";

/// The scope to issue: `granted` when nothing was requested, else the requested scopes, each of
/// which must be one the grant gives (RFC 6749 §3.3). Order follows `granted`.
pub fn narrow(requested: &str, granted: &str) -> Result<String, DomainError> {
    let mut wanted = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) || !granted.split(' ').any(|g| g == token) {
            return Err(DomainError::InvalidScope);
        }
        wanted.push(token);
    }
    if wanted.is_empty() {
        return Ok(granted.to_owned());
    }
    Ok(granted
        .split(' ')
        .filter(|g| wanted.contains(g))
        .collect::<Vec<_>>()
        .join(" "))
}

/// RFC 6749 scope-token: `%x21 / %x23-5B / %x5D-7E`.
fn is_scope_token(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Whether `scope` contains `wanted` as one of its space-separated scopes.
pub fn has(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_request_gets_the_whole_grant() {
        assert_eq!(narrow("", INTEG).expect("ok"), INTEG);
        assert_eq!(narrow("   ", INTEG).expect("ok"), INTEG);
    }

    #[test]
    fn the_granted_scope_may_be_asked_for_again() {
        assert_eq!(
            narrow("public-read public-read", PUBLIC_READ).expect("ok"),
            PUBLIC_READ
        );
    }

    #[test]
    fn a_wider_or_unknown_scope_is_refused() {
        assert!(matches!(
            narrow("user", PUBLIC_READ),
            Err(DomainError::InvalidScope)
        ));
        assert!(matches!(
            narrow("integ admin", INTEG),
            Err(DomainError::InvalidScope)
        ));
        assert!(matches!(
            narrow("in\"teg", INTEG),
            Err(DomainError::InvalidScope)
        ));
    }
}
