//! A refresh token, known only by its SHA-256.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub sid: String,
    pub client_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    pub successor_hash: Option<String>,
    pub access_jti: Option<String>,
    pub access_expires_at: Option<i64>,
    pub replaced_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
