//! An Ed25519 key pair for PASETO v4.public; the secret half is sealed under the master key.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub generation: i64,
    pub public_key: Vec<u8>,
    pub sealed_secret_key: Vec<u8>,
    pub created_at: i64,
    pub superseded_at: Option<i64>,
    pub retire_at: Option<i64>,
    pub row_mac: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
