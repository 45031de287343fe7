//! Client administration: what `tessera client ...` does.
use secrecy::SecretString;
use serde::Serialize;

use super::{
    DomainError, client_secret,
    clock::now_ms,
    random::new_secret,
    repository::{ClientRecord, ClientRepository},
};

/// The two kinds of client of SPEC §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A browser or mobile app: public; may hold a secret for token exchange.
    Marketplace,
    /// A back-end job: confidential, always holds a secret.
    Integration,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketplace => "marketplace",
            Self::Integration => "integration",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "marketplace" => Some(Self::Marketplace),
            "integration" => Some(Self::Integration),
            _ => None,
        }
    }
}

/// A client as `client list` shows it: never its secret or hash.
#[derive(Clone, Debug, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: String,
    pub kind: String,
    pub has_secret: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<ClientRecord> for ClientSummary {
    fn from(m: ClientRecord) -> Self {
        Self {
            client_id: m.client_id,
            name: m.name,
            kind: m.kind.as_str().to_owned(),
            has_secret: m.secret_hash.is_some(),
            disabled: m.disabled_at.is_some(),
            created_at: m.created_at,
        }
    }
}

/// A client just made, with its secret: the only time the secret is seen.
#[derive(Debug)]
pub struct CreatedClient {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// Longest client name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Registers a client. Integration clients always get a secret.
pub async fn create_client(
    repo: &dyn ClientRepository,
    name: &str,
    kind: ClientKind,
    with_secret: bool,
) -> Result<CreatedClient, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid_field(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    let secret = (with_secret || kind == ClientKind::Integration).then(new_secret);
    let secret_hash = secret.as_deref().map(client_secret::digest);
    let now = now_ms();
    let client_id = uuid::Uuid::new_v4().to_string();
    repo.insert_client(ClientRecord {
        client_id: client_id.clone(),
        name: name.to_owned(),
        kind,
        secret_rotated_at: secret_hash.as_ref().map(|_| now),
        secret_hash,
        disabled_at: None,
        created_at: now,
        updated_at: now,
    })
    .await?;
    Ok(CreatedClient {
        client_id,
        client_secret: secret.map(SecretString::from),
    })
}

/// Every client.
pub async fn list_clients(repo: &dyn ClientRepository) -> Result<Vec<ClientSummary>, DomainError> {
    Ok(repo
        .list_clients()
        .await?
        .into_iter()
        .map(ClientSummary::from)
        .collect())
}

/// Disables a client and ends its sessions; its earlier tokens become inactive. Its revocation
/// is kept in the log for `revocation_kept_for` (the longest a token lives, plus the leeway).
/// Returns false when there is no such client.
pub async fn disable_client(
    repo: &dyn ClientRepository,
    client_id: &str,
    revocation_kept_for: std::time::Duration,
) -> Result<bool, DomainError> {
    let now = now_ms();
    let expire_at = now.saturating_add(super::clock::ms(revocation_kept_for));
    Ok(repo.disable_client(client_id, now, expire_at).await?)
}

/// Gives a client a new secret; the old one stops working at once on every instance.
/// `None` when there is no such client.
pub async fn rotate_secret(
    repo: &dyn ClientRepository,
    client_id: &str,
) -> Result<Option<SecretString>, DomainError> {
    if repo.find_client(client_id).await?.is_none() {
        return Ok(None);
    }
    let secret = new_secret();
    let hash = client_secret::digest(&secret);
    Ok(repo
        .set_client_secret(client_id, hash, now_ms())
        .await?
        .then(|| SecretString::from(secret)))
}
