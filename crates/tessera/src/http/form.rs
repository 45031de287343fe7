//! What a form request carries: its body (`application/x-www-form-urlencoded`, at most
//! 64 KiB), its parameters (each at most once, RFC 6749 §3.2), and how its caller
//! authenticates: client credentials in the form or in HTTP Basic (RFC 6749 §2.3.1), or an
//! `Authorization: Bearer` access token.
use std::{collections::HashMap, time::Duration};

use axum::body::Body;
use base64::Engine as _;
use http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::error::{ApiError, Challenge};
use crate::domain::DomainError;
use crate::server::MAX_REQUEST_BYTES;

/// How long a caller has to send its body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The parameters of a form body. Empty values count as absent.
#[derive(Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// Reads and parses a form body: 415 for another content type, 413 past 64 KiB, 400 for a
    /// repeated parameter.
    pub async fn read(headers: &HeaderMap, body: Body) -> Result<Self, ApiError> {
        if !is_form(headers) {
            return Err(ApiError::unsupported_media_type());
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_REQUEST_BYTES as u64) {
            return Err(ApiError::payload_too_large());
        }
        let collected = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(body, MAX_REQUEST_BYTES).collect(),
        )
        .await
        .map_err(|_| ApiError::body_timeout())?;
        let bytes = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<LengthLimitError>() => return Err(ApiError::payload_too_large()),
            Err(_) => {
                return Err(
                    DomainError::invalid_field("body", "could not be read to its end").into(),
                );
            }
        };
        Self::parse(&bytes)
    }

    /// Parses `a=1&b=2`: percent-decoding and `+` as a space, each name at most once, UTF-8
    /// only (bytes that are not UTF-8 are refused, not replaced: two different passwords must
    /// never read as the same text).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let mut params = HashMap::new();
        for pair in bytes.split(|b| *b == b'&').filter(|pair| !pair.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let (name, value) = (decode(name)?, decode(value)?);
            if value.is_empty() {
                continue;
            }
            if params.contains_key(&name) {
                return Err(repeated(&name));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    /// Takes a parameter out ("" when absent).
    pub fn take(&mut self, name: &str) -> String {
        self.0.remove(name).unwrap_or_default()
    }
}

/// One form-encoded name or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(encoded: &[u8]) -> Result<String, ApiError> {
    let spaced: Vec<u8> = encoded
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| DomainError::invalid_field("body", "must be UTF-8").into())
}

fn repeated(name: &str) -> ApiError {
    // Only the names Tessera reads are named back; anything else is the caller's own text.
    let field = KNOWN_FIELDS
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or("parameter");
    DomainError::invalid_field(field, "must not be sent more than once").into()
}

/// The parameters the endpoints read.
const KNOWN_FIELDS: [&str; 11] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "subject_token",
    "subject_token_type",
    "refresh_token",
    "token",
    "token_type_hint",
];

/// `application/x-www-form-urlencoded`, in UTF-8 (no charset, or `; charset=UTF-8`): a form
/// in another charset would be read as something else than what was meant.
fn is_form(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let media_ok = parts.next().is_some_and(|media| {
        media
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    media_ok
        && parts.all(|param| match param.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// The `Authorization` header, split into its scheme and credentials.
fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// How the caller said it authenticates, read from the headers alone.
pub fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    match authorization(headers) {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("basic") => Some(Challenge::Basic),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => Some(Challenge::Bearer),
        _ => None,
    }
}

/// The token of `Authorization: Bearer <token>`, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .filter(|token| !token.is_empty())
}

/// A client's id and secret ("" when none was sent).
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCredentials {
    /// The client credentials of a request: HTTP Basic (RFC 6749 §2.3.1: the id and secret
    /// form-urlencoded, then joined by `:` and base64-encoded) or `client_id` and
    /// `client_secret` in the form, never both ways at once (a `client_id` in the form that
    /// repeats Basic's is tolerated, as many clients send it).
    pub fn take(headers: &HeaderMap, form: &mut Form) -> Result<Self, ApiError> {
        let form_id = form.take("client_id");
        let form_secret = form.take("client_secret");
        let Some((_, encoded)) =
            authorization(headers).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        else {
            return Ok(Self {
                client_id: form_id,
                client_secret: form_secret,
            });
        };
        let basic = basic_credentials(encoded).ok_or_else(|| {
            ApiError::from(DomainError::InvalidClient).challenge(Some(Challenge::Basic))
        })?;
        if !form_secret.is_empty() || (!form_id.is_empty() && form_id != basic.client_id) {
            return Err(DomainError::invalid_field(
                "client_secret",
                "must be sent one way only: HTTP Basic or the form",
            )
            .into());
        }
        Ok(basic)
    }
}

/// Decodes Basic credentials; `None` when they are not base64 of `id:secret`.
fn basic_credentials(encoded: &str) -> Option<ClientCredentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some(ClientCredentials {
        client_id: form_decode(id)?,
        client_secret: form_decode(secret)?,
    })
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(text: &str) -> Option<String> {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded_inside_base64() {
        let mut form = Form::default();
        let creds = ClientCredentials::take(&basic("my%20client:s%3Acr+t"), &mut form)
            .unwrap_or_else(|_| panic!("credentials"));
        assert_eq!(creds.client_id, "my client");
        assert_eq!(creds.client_secret, "s:cr t");
    }

    #[test]
    fn credentials_sent_two_ways_are_refused() {
        let mut form = Form::parse(b"client_secret=other").unwrap_or_else(|_| panic!("form"));
        assert!(ClientCredentials::take(&basic("id:secret"), &mut form).is_err());
        let mut same_id = Form::parse(b"client_id=id").unwrap_or_else(|_| panic!("form"));
        assert!(ClientCredentials::take(&basic("id:secret"), &mut same_id).is_ok());
    }

    #[test]
    fn unreadable_basic_credentials_are_an_invalid_client() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        let err = ClientCredentials::take(&headers, &mut Form::default())
            .err()
            .expect("refused");
        assert_eq!(err.code(), "invalid_client");
    }

    #[test]
    fn a_repeated_parameter_is_refused_and_an_empty_one_is_absent() {
        assert!(Form::parse(b"token=a&token=b").is_err());
        let mut form = Form::parse(b"token=&scope=a+b%20c").unwrap_or_else(|_| panic!("form"));
        assert_eq!(form.take("token"), "");
        assert_eq!(form.take("scope"), "a b c");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_not_replaced() {
        assert!(Form::parse(b"password=pass%FF").is_err());
        assert!(Form::parse(b"pass%FE=x").is_err());
        let mut form =
            Form::parse("password=caf%C3%A9".as_bytes()).unwrap_or_else(|_| panic!("form"));
        assert_eq!(form.take("password"), "café");
        assert!(
            Form::parse(b"token=a%2Bb%26c%3Dd").is_ok_and(|mut f| f.take("token") == "a+b&c=d")
        );
    }

    #[test]
    fn a_form_in_another_charset_is_not_a_form_we_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=ISO-8859-1"
                .parse()
                .expect("header"),
        );
        assert!(!is_form(&headers));
    }

    #[test]
    fn the_form_content_type_may_carry_a_charset() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
                .parse()
                .expect("header"),
        );
        assert!(is_form(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().expect("h"));
        assert!(!is_form(&headers));
    }
}
