//! `tessera health`: asks a running server's grpc.health.v1 whether it serves. For container
//! health checks, which have no grpcurl. Speaks TLS when given the CA to trust, with a client
//! certificate when the server requires one.
use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// `tessera health` flags.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Address of the server.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Service name to ask about ("" is the whole server).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Speak TLS, trusting the CA certificates in this PEM file: the CA that issued the
    /// server's certificate, a self-signed certificate itself, or the system's bundle
    /// (/etc/ssl/certs/ca-certificates.crt) for a public CA.
    #[arg(long, env = "TESSERA_HEALTH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --addr).
    #[arg(long, env = "TESSERA_HEALTH_TLS_SERVER_NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// Client certificate (PEM) to present to a server that requires one
    /// (TESSERA_TLS_CLIENT_CA); with --tls-key.
    #[arg(
        long,
        env = "TESSERA_HEALTH_TLS_CERT",
        requires = "tls_key",
        requires = "tls_ca"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TESSERA_HEALTH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Exits successfully only when the server at `addr` reports SERVING for `service`.
pub async fn check(args: &HealthArgs) -> anyhow::Result<()> {
    let addr = &args.addr;
    let scheme = if args.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .with_context(|| format!("invalid address {addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    if let Some(tls) = tls_config(args)? {
        endpoint = endpoint.tls_config(tls).context("invalid TLS settings")?;
    }
    // A plaintext client gets garbled answers from a TLS server: say what may be missing.
    let hint = if args.tls_ca.is_none() {
        " (a server with TLS on needs --tls-ca)"
    } else {
        ""
    };
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach {addr}{hint}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .with_context(|| format!("health check of {addr} failed{hint}"))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    if status != ServingStatus::Serving {
        anyhow::bail!("{addr} is {}", status.as_str_name());
    }
    println!("SERVING");
    Ok(())
}

/// The TLS side, with each file checked here: tonic would only say "transport error".
fn tls_config(args: &HealthArgs) -> anyhow::Result<Option<ClientTlsConfig>> {
    let Some(ca) = &args.tls_ca else {
        return Ok(None);
    };
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))
    };
    let ca_pem = read("--tls-ca", ca)?;
    let certificates = CertificateDer::pem_slice_iter(&ca_pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty());
    anyhow::ensure!(
        certificates.is_some(),
        "--tls-ca {}: expected PEM certificates",
        ca.display()
    );
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let cert_pem = read("--tls-cert", cert)?;
        let key_pem = read("--tls-key", key)?;
        anyhow::ensure!(
            CertificateDer::pem_slice_iter(&cert_pem).next().is_some(),
            "--tls-cert {}: expected a PEM certificate",
            cert.display()
        );
        anyhow::ensure!(
            PrivateKeyDer::from_pem_slice(&key_pem).is_ok(),
            "--tls-key {}: expected an unencrypted PEM private key",
            key.display()
        );
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(Some(tls))
}
