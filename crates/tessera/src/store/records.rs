//! Rows <-> the domain's records, and store errors <-> the domain's repository errors.
use sea_orm::DbErr;

use super::StoreError;
use super::entity::{clients, refresh_tokens, revocation_log, sessions, signing_keys, users};
use crate::domain::{
    clients::ClientKind,
    repository::{
        ClientRecord, IssuedAccess, RefreshTokenRecord, RepositoryError, RevocationEvent,
        RevocationKind, SessionRecord, SigningKeyRecord, UserRecord,
    },
};

impl From<StoreError> for RepositoryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => Self::Unavailable(e.into()),
            StoreError::Conflict(e) => Self::Conflict(e.into()),
            StoreError::Other(e) => Self::Other(e.into()),
        }
    }
}

impl From<DbErr> for RepositoryError {
    fn from(err: DbErr) -> Self {
        StoreError::from(err).into()
    }
}

/// The text a revocation kind is stored as.
pub(super) fn kind_text(kind: RevocationKind) -> &'static str {
    match kind {
        RevocationKind::Session => "session",
        RevocationKind::Token => "token",
        RevocationKind::Client => "client",
    }
}

fn kind_of(text: &str) -> Option<RevocationKind> {
    match text {
        "session" => Some(RevocationKind::Session),
        "token" => Some(RevocationKind::Token),
        "client" => Some(RevocationKind::Client),
        _ => None,
    }
}

/// The event a row records; `None` for a kind this version does not know (a newer instance
/// may write kinds an older one skips).
pub(super) fn event_of(row: revocation_log::Model) -> Option<RevocationEvent> {
    Some(RevocationEvent {
        sequence: u64::try_from(row.sequence).ok()?,
        kind: kind_of(&row.kind)?,
        subject: row.subject,
        revoked_at: row.revoked_at,
        expires_at: row.expires_at,
    })
}

impl From<users::Model> for UserRecord {
    fn from(row: users::Model) -> Self {
        Self {
            user_id: row.user_id,
            username: row.username,
            password_hash: row.password_hash,
            disabled_at: row.disabled_at,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<UserRecord> for users::Model {
    fn from(user: UserRecord) -> Self {
        Self {
            user_id: user.user_id,
            username: user.username,
            password_hash: user.password_hash,
            disabled_at: user.disabled_at,
            version: user.version,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A client row as a record; `None` (with an error logged) for a kind this version does not
/// know, which only a broken or newer schema can hold.
pub(super) fn client_of(row: clients::Model) -> Option<ClientRecord> {
    let Some(kind) = ClientKind::parse(&row.kind) else {
        tracing::error!(client_id = %row.client_id, kind = %row.kind, "client of an unknown kind");
        return None;
    };
    Some(ClientRecord {
        client_id: row.client_id,
        name: row.name,
        kind,
        secret_hash: row.secret_hash,
        secret_rotated_at: row.secret_rotated_at,
        disabled_at: row.disabled_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

impl From<ClientRecord> for clients::Model {
    fn from(client: ClientRecord) -> Self {
        Self {
            client_id: client.client_id,
            name: client.name,
            kind: client.kind.as_str().to_owned(),
            secret_hash: client.secret_hash,
            secret_rotated_at: client.secret_rotated_at,
            disabled_at: client.disabled_at,
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

impl From<sessions::Model> for SessionRecord {
    fn from(row: sessions::Model) -> Self {
        Self {
            sid: row.sid,
            client_id: row.client_id,
            user_id: row.user_id,
            scope: row.scope,
            created_at: row.created_at,
            expires_at: row.expires_at,
            ended_at: row.ended_at,
            end_reason: row.end_reason,
        }
    }
}

impl From<SessionRecord> for sessions::Model {
    fn from(session: SessionRecord) -> Self {
        Self {
            sid: session.sid,
            client_id: session.client_id,
            user_id: session.user_id,
            scope: session.scope,
            created_at: session.created_at,
            expires_at: session.expires_at,
            ended_at: session.ended_at,
            end_reason: session.end_reason,
        }
    }
}

impl From<refresh_tokens::Model> for RefreshTokenRecord {
    fn from(row: refresh_tokens::Model) -> Self {
        Self {
            token_hash: row.token_hash,
            sid: row.sid,
            client_id: row.client_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            spent_at: row.spent_at,
            successor_hash: row.successor_hash,
            issued_with: row
                .access_jti
                .zip(row.access_expires_at)
                .map(|(jti, expires_at)| IssuedAccess { jti, expires_at }),
            replaced_at: row.replaced_at,
        }
    }
}

impl From<RefreshTokenRecord> for refresh_tokens::Model {
    fn from(token: RefreshTokenRecord) -> Self {
        Self {
            token_hash: token.token_hash,
            sid: token.sid,
            client_id: token.client_id,
            created_at: token.created_at,
            expires_at: token.expires_at,
            spent_at: token.spent_at,
            successor_hash: token.successor_hash,
            access_expires_at: token.issued_with.as_ref().map(|a| a.expires_at),
            access_jti: token.issued_with.map(|a| a.jti),
            replaced_at: token.replaced_at,
        }
    }
}

impl From<signing_keys::Model> for SigningKeyRecord {
    fn from(row: signing_keys::Model) -> Self {
        Self {
            kid: row.kid,
            generation: row.generation,
            public_key: row.public_key,
            sealed_secret_key: row.sealed_secret_key,
            created_at: row.created_at,
            superseded_at: row.superseded_at,
            retire_at: row.retire_at,
            row_mac: row.row_mac,
        }
    }
}

impl From<SigningKeyRecord> for signing_keys::Model {
    fn from(key: SigningKeyRecord) -> Self {
        Self {
            kid: key.kid,
            generation: key.generation,
            public_key: key.public_key,
            sealed_secret_key: key.sealed_secret_key,
            created_at: key.created_at,
            superseded_at: key.superseded_at,
            retire_at: key.retire_at,
            row_mac: key.row_mac,
        }
    }
}
