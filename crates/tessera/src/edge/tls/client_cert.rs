//! What a verified client certificate says: whether it was made for client authentication,
//! and the name a log line knows its holder by.
use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer};

/// The longest name of a certificate's holder kept for a log line.
const MAX_NAME_CHARS: usize = 128;

/// Whether the certificate's extended key usage names clientAuth (a certificate without the
/// extension, or one that does not decode, does not).
pub fn has_client_auth_usage(der: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
}

/// The holder of a certificate, for a log line: its first DNS or URI subject alternative
/// name, else its subject's common name, else its whole subject; printable ASCII only, cut
/// at [`MAX_NAME_CHARS`]. `None` if it does not decode or names nobody.
pub fn holder(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let from_san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::DNSName(name) | GeneralName::URI(name) => Some(name.to_string()),
                _ => None,
            })
        });
    let name = from_san
        .or_else(|| {
            cert.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        })
        .unwrap_or_else(|| cert.subject().to_string());
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_NAME_CHARS)
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};

    fn der(sans: &[&str], usages: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let sans = sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(sans).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "billing\nforged line");
        params.extended_key_usages = usages;
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn only_a_certificate_naming_client_auth_is_for_clients() {
        assert!(has_client_auth_usage(&der(
            &[],
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        )));
        assert!(!has_client_auth_usage(&der(&[], Vec::new())));
        assert!(!has_client_auth_usage(&der(
            &[],
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        )));
        assert!(!has_client_auth_usage(b"not a certificate"));
    }

    #[test]
    fn the_holder_is_the_first_dns_name_else_the_common_name_printable_only() {
        let with_san = der(&["billing.internal"], Vec::new());
        assert_eq!(holder(&with_san).as_deref(), Some("billing.internal"));
        let without = der(&[], Vec::new());
        assert_eq!(holder(&without).as_deref(), Some("billingforged line"));
        assert_eq!(holder(b"junk"), None);
    }
}
