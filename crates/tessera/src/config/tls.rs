//! The TLS settings of `serve` (SPEC §9): which files hold the certificate, its key and the CA
//! of client certificates. Reading and checking the files is [`crate::edge::tls`]'s work (it
//! reads them again when they change).
use std::path::PathBuf;

use clap::Args;

use super::ConfigError;

/// `--tls-cert`, `--tls-key`, `--tls-client-ca`, each also read from its TESSERA_* variable.
#[derive(Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain, the server's certificate first. With TESSERA_TLS_KEY, every
    /// listener (gRPC, HTTP, metrics) speaks TLS only; re-read when the file changes.
    #[arg(long, env = "TESSERA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of TESSERA_TLS_CERT (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, env = "TESSERA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates of client certificates (mTLS): the gRPC and metrics listeners
    /// require a client certificate from them (with the clientAuth extended key usage); the
    /// HTTP listener never asks for one.
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

/// Where the TLS material lives: both certificate and key, and the client CA if mTLS is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// A certificate and its key, without client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        }
    }

    /// The same, asking for client certificates from this CA.
    pub fn with_client_ca(mut self, client_ca: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(client_ca.into());
        self
    }
}

impl TlsArgs {
    /// The files given: both certificate and key, or neither (plaintext); a client CA only
    /// with them.
    pub fn files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let given = |path: &Option<PathBuf>| path.clone().filter(|p| !p.as_os_str().is_empty());
        let shown = |path: &PathBuf| path.display().to_string();
        match (
            given(&self.tls_cert),
            given(&self.tls_key),
            given(&self.tls_client_ca),
        ) {
            (Some(cert), Some(key), client_ca) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            })),
            (Some(cert), None, _) => Err(ConfigError::new(
                "TESSERA_TLS_KEY",
                "",
                format!(
                    "expected the private key of TESSERA_TLS_CERT ({}): both or neither",
                    shown(&cert)
                ),
            )),
            (None, Some(key), _) => Err(ConfigError::new(
                "TESSERA_TLS_CERT",
                "",
                format!(
                    "expected the certificate of TESSERA_TLS_KEY ({}): both or neither",
                    shown(&key)
                ),
            )),
            (None, None, Some(ca)) => Err(ConfigError::new(
                "TESSERA_TLS_CLIENT_CA",
                &shown(&ca),
                "client certificates need TLS: set TESSERA_TLS_CERT and TESSERA_TLS_KEY too",
            )),
            (None, None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cert: &str, key: &str, ca: &str) -> TlsArgs {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        TlsArgs {
            tls_cert: path(cert),
            tls_key: path(key),
            tls_client_ca: path(ca),
        }
    }

    #[test]
    fn certificate_and_key_come_together_and_a_client_ca_only_with_them() {
        assert_eq!(args("", "", "").files().expect("plaintext"), None);
        assert_eq!(
            args("c.pem", "k.pem", "ca.pem").files().expect("mtls"),
            Some(TlsFiles::new("c.pem", "k.pem").with_client_ca("ca.pem"))
        );
        let no_key = args("c.pem", "", "").files().expect_err("no key");
        assert_eq!(no_key.name, "TESSERA_TLS_KEY");
        let no_cert = args("", "k.pem", "").files().expect_err("no cert");
        assert_eq!(no_cert.name, "TESSERA_TLS_CERT");
        let ca_alone = args("", "", "ca.pem").files().expect_err("ca alone");
        assert_eq!(ca_alone.name, "TESSERA_TLS_CLIENT_CA");
    }
}
