//! Users: what `tessera user ...` does, and username normalisation.
use secrecy::{ExposeSecret, SecretString};

use std::time::Duration;

use super::{
    DomainError,
    clock::{ms, now_ms},
    hashing::HashingPool,
    repository::{RepositoryError, UserRecord, UserRepository},
};

/// Longest username (an e-mail address), in bytes, before and after normalisation.
pub const MAX_USERNAME_LEN: usize = 320;
/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted anywhere; longer ones are refused before hashing.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Usernames are matched case-insensitively after trimming: this is the stored form.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn validate_new_username(username: &str) -> Result<(), DomainError> {
    let plausible_email = username.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control());
    if username.len() > MAX_USERNAME_LEN || !plausible_email {
        return Err(DomainError::invalid_field(
            "username",
            "must be an e-mail address of at most 320 bytes",
        ));
    }
    Ok(())
}

fn validate_new_password(password: &SecretString) -> Result<(), DomainError> {
    let chars = password.expose_secret().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(DomainError::invalid_field(
            "password",
            "must be 8 to 128 characters",
        ));
    }
    Ok(())
}

/// Registers a user; returns its id. A taken username (in any letter case) is refused.
pub async fn create_user(
    repo: &dyn UserRepository,
    hasher: &HashingPool,
    username: &str,
    password: SecretString,
) -> Result<String, DomainError> {
    let username = normalize_username(username);
    validate_new_username(&username)?;
    validate_new_password(&password)?;
    let password_hash = hasher.hash(password).await?;
    let now = now_ms();
    let user_id = uuid::Uuid::new_v4().to_string();
    let row = UserRecord {
        user_id: user_id.clone(),
        username,
        password_hash,
        disabled_at: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    match repo.insert_user(row).await {
        Ok(()) => Ok(user_id),
        Err(RepositoryError::Conflict(_)) => {
            Err(DomainError::invalid_field("username", "is taken"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Disables a user and ends their sessions; their revocations are kept in the log for
/// `revocations_kept_for` (the longest a token lives, plus the leeway). Returns false when
/// there is no such user.
pub async fn disable_user(
    repo: &dyn UserRepository,
    username: &str,
    revocations_kept_for: Duration,
) -> Result<bool, DomainError> {
    let Some(user) = repo
        .find_user_by_username(&normalize_username(username))
        .await?
    else {
        return Ok(false);
    };
    let now = now_ms();
    let expire_at = now.saturating_add(ms(revocations_kept_for));
    Ok(repo.disable_user(&user.user_id, now, expire_at).await?)
}

/// Sets a user's password and ends their sessions, as [`disable_user`] does. Returns false
/// when there is no such user.
pub async fn set_password(
    repo: &dyn UserRepository,
    hasher: &HashingPool,
    username: &str,
    password: SecretString,
    revocations_kept_for: Duration,
) -> Result<bool, DomainError> {
    validate_new_password(&password)?;
    let Some(user) = repo
        .find_user_by_username(&normalize_username(username))
        .await?
    else {
        return Ok(false);
    };
    let hash = hasher.hash(password).await?;
    let now = now_ms();
    let expire_at = now.saturating_add(ms(revocations_kept_for));
    Ok(repo
        .change_password(&user.user_id, hash, now, expire_at)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_username("  Alice@Example.COM \n"),
            "alice@example.com"
        );
    }

    #[test]
    fn new_usernames_must_look_like_e_mail_addresses() {
        assert!(validate_new_username("a@b").is_ok());
        for bad in ["", "alice", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(validate_new_username(bad).is_err(), "{bad}");
        }
        assert!(validate_new_username(&format!("{}@b", "a".repeat(320))).is_err());
    }

    #[test]
    fn new_passwords_are_8_to_128_characters() {
        assert!(validate_new_password(&SecretString::from("1234567")).is_err());
        assert!(validate_new_password(&SecretString::from("12345678")).is_ok());
        assert!(validate_new_password(&SecretString::from("é".repeat(128))).is_ok());
        assert!(validate_new_password(&SecretString::from("é".repeat(129))).is_err());
    }
}
