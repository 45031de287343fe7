//! TLS on every listener (SPEC §9), with rustls on the `ring` provider. The certificate, its
//! key and the client CA are read into one rustls configuration per listener; every new
//! connection takes the configurations in force when it arrives. [`Tls::follow`] reads the
//! files again every couple of seconds and swaps in new configurations when their contents
//! changed: open connections keep the session they have, new ones get the new certificate.
//! A new set that does not load (a half-written file, a key that is not the certificate's)
//! is refused with a warning and the one in force stays.
//!
//! Whole configurations are swapped rather than only the certificate behind a
//! `ResolvesServerCert`: the client CA then reloads by the same path, and each listener keeps
//! its own session cache. The listeners that require client certificates keep none: rustls
//! does not check a resumed session's certificate again, so it would outlive its expiry.
//! Their verifier also wants the clientAuth extended key usage on the leaf.
pub mod client_cert;
mod incoming;

use std::{path::Path, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore, ServerConfig,
        crypto::CryptoProvider,
        pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
        server::{WebPkiClientVerifier, danger::ClientCertVerifier},
        sign::CertifiedKey,
    },
};

use crate::config::{ConfigError, TlsFiles};
pub use incoming::incoming;

/// How often the files are read again to see whether they changed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// The longest a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a client may take to send the first bytes of its ClientHello (a connection
/// that says nothing holds a handshake place for this long, not [`HANDSHAKE_TIMEOUT`]).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// What both HTTP/2 and HTTP/1.1 listeners offer in ALPN: gRPC (and gRPC-Web over HTTP/2),
/// gRPC-Web and the token endpoint over HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Which listener a connection arrived on: each has its own client certificate rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Internal services: with a client CA, a client certificate is required.
    Grpc,
    /// Browsers and SDKs: never asked for a client certificate (introspection there is
    /// bearer-only; asking would show browsers a certificate picker and send the CA's name
    /// to anyone who connects).
    Http,
    /// Prometheus: as the gRPC listener.
    Metrics,
}

/// The TLS configurations in force, and the files they come from.
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<Loaded>,
    /// What the last set of files that failed to load held, so that a bad set is warned
    /// about once, not at every read.
    last_failure: parking_lot::Mutex<Option<[u8; 32]>>,
}

struct Loaded {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    metrics: Arc<ServerConfig>,
    /// What the files held (a digest: no second copy of the key stays in memory).
    digest: [u8; 32],
}

/// What a read of the files found.
#[derive(Debug)]
pub enum Reload {
    /// The files hold what is in force.
    Unchanged,
    /// New contents, loaded and in force for new connections.
    Reloaded,
    /// New contents that do not load: the configuration in force stays.
    Refused(ConfigError),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads and checks the files: a clear error, naming the setting, for a file that is
    /// missing, unreadable, not PEM, a key that is not the certificate's, or a bad CA.
    pub fn load(files: TlsFiles) -> Result<Self, ConfigError> {
        let loaded = load(&files)?;
        warn_if_key_open_to_others(&files.key);
        Ok(Self {
            files,
            current: ArcSwap::from_pointee(loaded),
            last_failure: parking_lot::Mutex::new(None),
        })
    }

    /// Whether client certificates are asked for (TESSERA_TLS_CLIENT_CA).
    pub fn has_client_ca(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The acceptor for a new connection on `listener`, with the configuration in force now.
    pub fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let loaded = self.current.load();
        TlsAcceptor::from(match listener {
            Listener::Grpc => loaded.grpc.clone(),
            Listener::Http => loaded.http.clone(),
            Listener::Metrics => loaded.metrics.clone(),
        })
    }

    /// Reads the files again; swaps in what they hold if it changed and loads.
    pub fn reload(&self) -> Reload {
        let digest = match read_all(&self.files) {
            Ok(contents) => contents.digest(),
            Err(e) => return self.refused(Sha256::digest(e.to_string()).into(), e),
        };
        if digest == self.current.load().digest {
            return Reload::Unchanged;
        }
        match load(&self.files) {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                *self.last_failure.lock() = None;
                Reload::Reloaded
            }
            Err(e) => self.refused(digest, e),
        }
    }

    /// A failure, told once for as long as the files stay the same (`seen` stands for them,
    /// or for the error when they cannot be read).
    fn refused(&self, seen: [u8; 32], error: ConfigError) -> Reload {
        let mut last = self.last_failure.lock();
        if *last == Some(seen) {
            return Reload::Unchanged;
        }
        *last = Some(seen);
        Reload::Refused(error)
    }

    /// Reads the files every [`RELOAD_EVERY`] for as long as it runs (the server aborts it
    /// when it stops), and logs what changed.
    pub async fn follow(self: Arc<Self>) {
        let mut every = tokio::time::interval(RELOAD_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let tls = self.clone();
            let Ok(outcome) = tokio::task::spawn_blocking(move || tls.reload()).await else {
                continue;
            };
            match outcome {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    tracing::info!(
                        cert = %self.files.cert.display(),
                        "TLS files changed: new connections get the new certificate"
                    );
                    warn_if_key_open_to_others(&self.files.key);
                }
                Reload::Refused(error) => tracing::warn!(
                    error = %error,
                    "TLS files changed but do not load: keeping the certificate in use"
                ),
            }
        }
    }
}

/// Warns when the TLS key file can be read by users other than its owner: whoever reads it
/// can pass for this server (and read what clients send it). Not refused, as with the master
/// key file: container secrets are often mounted 0444.
fn warn_if_key_open_to_others(path: &Path) {
    if let Some(mode) = crate::config::open_to_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the TLS key file (TESSERA_TLS_KEY) is open to other users of this machine \
             (chmod 0400 it, owned by the service's user)"
        );
    }
}

/// The bytes of the files, as read.
struct Contents {
    cert: Vec<u8>,
    key: zeroize::Zeroizing<Vec<u8>>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            Some(self.cert.as_slice()),
            Some(self.key.as_slice()),
            self.client_ca.as_deref(),
        ] {
            let part = part.unwrap_or_default();
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }
}

fn read_all(files: &TlsFiles) -> Result<Contents, ConfigError> {
    Ok(Contents {
        cert: read("TESSERA_TLS_CERT", &files.cert)?,
        key: zeroize::Zeroizing::new(read("TESSERA_TLS_KEY", &files.key)?),
        client_ca: files
            .client_ca
            .as_deref()
            .map(|path| read("TESSERA_TLS_CLIENT_CA", path))
            .transpose()?,
    })
}

fn read(name: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::new(
            name,
            &shown(path),
            format!("expected a readable file ({e})"),
        )
    })
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn load(files: &TlsFiles) -> Result<Loaded, ConfigError> {
    let contents = read_all(files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&contents.cert).ok_or_else(|| {
        ConfigError::new(
            "TESSERA_TLS_CERT",
            &shown(&files.cert),
            "expected a PEM certificate chain (-----BEGIN CERTIFICATE-----), the server's first",
        )
    })?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|_| {
        ConfigError::new(
            "TESSERA_TLS_KEY",
            &shown(&files.key),
            "expected an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => ConfigError::new(
            "TESSERA_TLS_KEY",
            &shown(&files.key),
            format!(
                "expected the private key of the certificate in TESSERA_TLS_CERT ({}): they do not match",
                shown(&files.cert)
            ),
        ),
        other => ConfigError::new(
            "TESSERA_TLS_KEY",
            &shown(&files.key),
            format!("expected a key rustls can sign with ({other})"),
        ),
    })?;
    let certified = Arc::new(certified);
    let client_roots = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => Some(client_roots(path, pem)?),
        _ => None,
    };
    let config = |listener: Listener| -> Result<Arc<ServerConfig>, ConfigError> {
        let verifier = client_verifier(listener, client_roots.clone(), &provider).map_err(|e| {
            ConfigError::new(
                "TESSERA_TLS_CLIENT_CA",
                &files.client_ca.as_deref().map(shown).unwrap_or_default(),
                format!("expected CA certificates that can verify clients ({e})"),
            )
        })?;
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("TESSERA_TLS_CERT", &shown(&files.cert), e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Fixed(certified.clone())));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        if verifier_requires_certificates(listener, client_roots.is_some()) {
            // No session resumption where a client certificate is required: on resumption
            // rustls takes the chain stored with the session without checking it again, so a
            // certificate would keep working after it expired (or its CA was replaced).
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(config))
    };
    Ok(Loaded {
        grpc: config(Listener::Grpc)?,
        http: config(Listener::Http)?,
        metrics: config(Listener::Metrics)?,
        digest: contents.digest(),
    })
}

/// Every certificate in a PEM file; `None` when there is none or one does not decode.
fn certificates(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!chain.is_empty()).then_some(chain)
}

fn client_roots(path: &Path, pem: &[u8]) -> Result<Arc<RootCertStore>, ConfigError> {
    let bad = |why: String| ConfigError::new("TESSERA_TLS_CLIENT_CA", &shown(path), why);
    let certificates = certificates(pem).ok_or_else(|| {
        bad("expected PEM CA certificates (-----BEGIN CERTIFICATE-----)".to_owned())
    })?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| bad(format!("expected CA certificates ({e})")))?;
    }
    Ok(Arc::new(roots))
}

fn client_verifier(
    listener: Listener,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::server::VerifierBuilderError> {
    let Some(roots) = roots else {
        return Ok(WebPkiClientVerifier::no_client_auth());
    };
    match listener {
        Listener::Grpc | Listener::Metrics => {
            let webpki =
                WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
            Ok(Arc::new(ClientAuthOnly(webpki)))
        }
        Listener::Http => Ok(WebPkiClientVerifier::no_client_auth()),
    }
}

/// Whether `listener`'s connections must present a client certificate.
fn verifier_requires_certificates(listener: Listener, has_client_ca: bool) -> bool {
    has_client_ca && matches!(listener, Listener::Grpc | Listener::Metrics)
}

/// The client CA's verification, and a leaf certificate made for client authentication:
/// webpki checks the extended key usage only when the certificate has one, so without this
/// any certificate the CA ever signed (a server's, a code signer's) would be a client.
#[derive(Debug)]
struct ClientAuthOnly(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ClientAuthOnly {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if !client_cert::has_client_auth_usage(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::InvalidPurpose,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One certificate for every client (no SNI choice).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The TLS side of a connection that just arrived: the first bytes of the ClientHello within
/// [`HELLO_TIMEOUT`], the whole handshake within [`HANDSHAKE_TIMEOUT`]. A failure is the client's (a plaintext client, a wrong CA, a port
/// scanner) and is logged at debug level by the caller.
pub async fn handshake(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let handshake = async {
        hello_started(&tcp).await?;
        acceptor.accept(tcp).await
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the TLS handshake took too long",
            )
        })?
}

/// Waits up to [`HELLO_TIMEOUT`] for the client's first bytes (without taking them).
async fn hello_started(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HELLO_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(Ok(_)) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the client closed the connection before its TLS ClientHello",
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client sent no TLS ClientHello in time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minted() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn listeners_that_require_client_certificates_resume_no_sessions_and_http_asks_for_none() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = minted();
        let (ca, _) = minted();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write("cert.pem", &cert).expect("write");
        write("key.pem", &key).expect("write");
        write("ca.pem", &ca).expect("write");
        let tls = Tls::load(
            TlsFiles::new(dir.path().join("cert.pem"), dir.path().join("key.pem"))
                .with_client_ca(dir.path().join("ca.pem")),
        )
        .expect("loads");
        for listener in [Listener::Grpc, Listener::Metrics] {
            let config = tls.acceptor(listener).config().clone();
            assert_eq!(config.send_tls13_tickets, 0, "{listener:?}");
            assert!(!config.session_storage.can_cache(), "{listener:?}");
        }
        let http = tls.acceptor(Listener::Http).config().clone();
        assert!(http.session_storage.can_cache());
        assert!(!verifier_requires_certificates(Listener::Http, true));
        let verifier = client_verifier(Listener::Http, None, &provider()).expect("verifier");
        assert!(!verifier.offer_client_auth());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_open_to_others_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "key").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(crate::config::open_to_others(&path), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(crate::config::open_to_others(&path), Some(0o644));
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn new_files_are_taken_and_a_bad_set_is_refused_once_while_the_one_in_force_stays() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = minted();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write("cert.pem", &cert).expect("write");
        write("key.pem", &key).expect("write");
        let tls = Tls::load(TlsFiles::new(
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
        ))
        .expect("loads");
        let first = tls.acceptor(Listener::Http).config().clone();
        assert!(matches!(tls.reload(), Reload::Unchanged));

        let (next_cert, next_key) = minted();
        // Half-way through a rotation: the new certificate, the old key.
        write("cert.pem", &next_cert).expect("write");
        match tls.reload() {
            Reload::Refused(error) => {
                assert_eq!(error.name, "TESSERA_TLS_KEY");
                assert!(error.to_string().contains("do not match"), "{error}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Warned about once, and the configuration in force stays.
        assert!(matches!(tls.reload(), Reload::Unchanged));
        assert!(Arc::ptr_eq(&first, tls.acceptor(Listener::Http).config()));

        write("key.pem", &next_key).expect("write");
        assert!(matches!(tls.reload(), Reload::Reloaded));
        assert!(!Arc::ptr_eq(&first, tls.acceptor(Listener::Http).config()));
        assert!(matches!(tls.reload(), Reload::Unchanged));

        std::fs::remove_file(dir.path().join("key.pem")).expect("remove");
        assert!(matches!(tls.reload(), Reload::Refused(_)));
        assert!(matches!(tls.reload(), Reload::Unchanged));
    }
}
