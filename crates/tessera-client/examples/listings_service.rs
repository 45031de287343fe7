//! The listings service, protected by Tessera: every call needs a bearer token that verifies
//! offline, `CloseListing` a `trusted:user` one.
//!
//! ```sh
//! cargo run -- serve &     # Tessera on 127.0.0.1:50051
//! read ID SECRET < <(cargo run -q -- client create --name listings --kind integration --json | jq -r '"\(.client_id) \(.client_secret)"')
//! TESSERA_CLIENT_ID=$ID TESSERA_CLIENT_SECRET=$SECRET cargo run -p tessera-client --example listings_service
//! ```
//!
//! The service's own integration client authenticates its revocation feed.
#[path = "support/listings.rs"]
mod listings;

use std::env;

use tessera_client::{TokenSource, Verifier};
use tonic::transport::{Channel, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tessera = env::var("TESSERA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let listen = env::var("LISTINGS_LISTEN").unwrap_or_else(|_| "127.0.0.1:50061".into());
    let channel = Channel::from_shared(tessera)?.connect().await?;

    let credentials = TokenSource::builder(
        channel.clone(),
        env::var("TESSERA_CLIENT_ID")?,
        env::var("TESSERA_CLIENT_SECRET")?,
    )
    .build();
    let verifier = Verifier::builder(channel)
        .credentials(credentials)
        .start()
        .await?;

    println!("listings service on {listen}");
    Server::builder()
        .layer(listings::auth_layer(verifier))
        .add_service(listings::ListingsServer)
        .serve(listen.parse()?)
        .await?;
    Ok(())
}
