//! Certificates for TLS tests and benches: a CA minted with rcgen, the server and client
//! certificates it issues, PEM files written whole (a rename, as a certificate manager does),
//! and tonic's client side trusting a given CA.
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tessera::config::TlsFiles;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The name the test servers' certificates carry (and 127.0.0.1).
pub const SERVER_NAME: &str = "localhost";

/// A certificate authority of a test's own.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(
            "tessera",
            vec![SERVER_NAME.into(), "127.0.0.1".into()],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// A client certificate for `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(name, Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A certificate for `name` with `usages` as its extended key usage (none: without the
    /// extension), such as a CA also signs for servers or code.
    pub fn leaf_for(&self, name: &str, usages: Vec<ExtendedKeyUsagePurpose>) -> Leaf {
        self.leaf(name, Vec::new(), usages)
    }

    fn leaf(&self, name: &str, sans: Vec<String>, usages: Vec<ExtendedKeyUsagePurpose>) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `contents` to `dir/name` whole: a temporary file renamed over the old one.
pub fn write_pem(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, contents).expect("write PEM");
    std::fs::rename(&partial, &path).expect("rename PEM");
    path
}

/// A CA, a server certificate of it and the files a server reads, in a directory of their own.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub server: Leaf,
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("Tessera test CA");
        let server = ca.server();
        let pki = Self { dir, ca, server };
        pki.install(&pki.server);
        pki
    }

    /// Puts `leaf` in the server's files (`server.pem`, `server.key`), key first.
    pub fn install(&self, leaf: &Leaf) {
        write_pem(self.dir.path(), "server.key", &leaf.key);
        write_pem(self.dir.path(), "server.pem", &leaf.cert);
    }

    /// The server's settings: its certificate and key.
    pub fn files(&self) -> TlsFiles {
        TlsFiles::new(
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }

    /// The server's settings, asking for client certificates from `client_ca`.
    pub fn files_with_client_ca(&self, client_ca: &TestCa) -> TlsFiles {
        let path = write_pem(self.dir.path(), "client-ca.pem", &client_ca.pem);
        self.files().with_client_ca(path)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// tonic's client side trusting `ca` only, presenting `identity` if given.
pub fn client_tls(ca: &TestCa, identity: Option<&Leaf>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name(SERVER_NAME);
    match identity {
        Some(leaf) => tls.identity(Identity::from_pem(&leaf.cert, &leaf.key)),
        None => tls,
    }
}

/// A channel over TLS to `addr`, connected now (a refused handshake shows here, or, when the
/// server refuses the client's certificate after TLS 1.3's handshake, at the first call).
pub async fn tls_channel(
    addr: std::net::SocketAddr,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}
