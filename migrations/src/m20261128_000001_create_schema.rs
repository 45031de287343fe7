//! The whole schema of SPEC.md: clients, signing keys, users, sessions, refresh tokens,
//! revocations and login throttling.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    ClientId,
    Name,
    Kind,
    SecretHash,
    SecretRotatedAt,
    DisabledAt,
    TokensValidAfter,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Generation,
    PublicKey,
    SealedSecretKey,
    CreatedAt,
    SupersededAt,
    RetireAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    UserId,
    Username,
    PasswordHash,
    DisabledAt,
    TokensValidAfter,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Sid,
    ClientId,
    UserId,
    Scope,
    CreatedAt,
    ExpiresAt,
    EndedAt,
    EndReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    Sid,
    ClientId,
    CreatedAt,
    ExpiresAt,
    SpentAt,
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Jti,
    ClientId,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginThrottles {
    Table,
    ThrottleKey,
    Failures,
    WindowStartedAt,
    LockedUntil,
    Lockouts,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string_len(Clients::ClientId, 36).primary_key())
                    .col(string_len(Clients::Name, 200))
                    .col(string_len(Clients::Kind, 16))
                    .col(string_null(Clients::SecretHash))
                    .col(big_integer_null(Clients::SecretRotatedAt))
                    .col(big_integer_null(Clients::DisabledAt))
                    .col(big_integer(Clients::TokensValidAfter))
                    .col(big_integer(Clients::CreatedAt))
                    .col(big_integer(Clients::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    // Unique, so that two instances starting or rotating at once cannot both
                    // install a key of the same generation.
                    .col(big_integer_uniq(SigningKeys::Generation))
                    .col(blob(SigningKeys::PublicKey))
                    .col(blob(SigningKeys::SealedSecretKey))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer_null(SigningKeys::SupersededAt))
                    .col(big_integer_null(SigningKeys::RetireAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string_len(Users::UserId, 36).primary_key())
                    // Stored trimmed and lower-cased, so uniqueness is case-insensitive.
                    .col(string_len_uniq(Users::Username, 320))
                    .col(string(Users::PasswordHash))
                    .col(big_integer_null(Users::DisabledAt))
                    .col(big_integer(Users::TokensValidAfter))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::Sid, 36).primary_key())
                    .col(string_len(Sessions::ClientId, 36))
                    .col(string_len_null(Sessions::UserId, 36))
                    .col(string_len(Sessions::Scope, 200))
                    .col(big_integer(Sessions::CreatedAt))
                    .col(big_integer(Sessions::ExpiresAt))
                    .col(big_integer_null(Sessions::EndedAt))
                    .col(string_len_null(Sessions::EndReason, 32))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::ClientId)
                            .to(Clients::Table, Clients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_client_id")
                    .table(Sessions::Table)
                    .col(Sessions::ClientId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    // SHA-256 of the token, hex: the token itself is never stored.
                    .col(string_len(RefreshTokens::TokenHash, 64).primary_key())
                    .col(string_len(RefreshTokens::Sid, 36))
                    .col(string_len(RefreshTokens::ClientId, 36))
                    .col(big_integer(RefreshTokens::CreatedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::SpentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::Sid)
                            .to(Sessions::Table, Sessions::Sid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_sid")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::Sid)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_expires_at")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(string_len(RevokedTokens::Jti, 64).primary_key())
                    .col(string_len(RevokedTokens::ClientId, 36))
                    .col(big_integer(RevokedTokens::RevokedAt))
                    // The revoked token's own expiry: past it the row can be deleted.
                    .col(big_integer(RevokedTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revoked_tokens_expires_at")
                    .table(RevokedTokens::Table)
                    .col(RevokedTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginThrottles::Table)
                    // "user:<normalised username>" or "addr:<end-user address>".
                    .col(string_len(LoginThrottles::ThrottleKey, 400).primary_key())
                    .col(integer(LoginThrottles::Failures))
                    .col(big_integer(LoginThrottles::WindowStartedAt))
                    .col(big_integer_null(LoginThrottles::LockedUntil))
                    .col(integer(LoginThrottles::Lockouts))
                    .col(big_integer(LoginThrottles::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginThrottles::Table.into_iden(),
            RevokedTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            Clients::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
