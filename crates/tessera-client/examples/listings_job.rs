//! A back-end job that calls the listings service as an integration client: its TokenSource
//! logs in with client_credentials and keeps the token renewed, the interceptor adds it to
//! every call. The job may export (`integ`), not close a listing (that needs `trusted:user`).
//!
//! ```sh
//! TESSERA_CLIENT_ID=$ID TESSERA_CLIENT_SECRET=$SECRET cargo run -p tessera-client --example listings_job
//! ```
#[path = "support/listings.rs"]
mod listings;

use std::env;

use tessera_client::TokenSource;
use tonic::{Request, service::interceptor::InterceptedService, transport::Channel};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tessera = env::var("TESSERA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let service = env::var("LISTINGS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50061".into());

    let tokens = TokenSource::builder(
        Channel::from_shared(tessera)?.connect().await?,
        env::var("TESSERA_CLIENT_ID")?,
        env::var("TESSERA_CLIENT_SECRET")?,
    )
    .build();
    tokens.token().await?; // fails here, clearly, if the credentials are refused
    let channel = Channel::from_shared(service)?.connect().await?;
    let mut listings =
        listings::ListingsClient::new(InterceptedService::new(channel, tokens.interceptor()));

    let export = listings.export_listings().await?;
    println!(
        "exported {} listings as {}",
        export.listings, export.exported_by
    );
    let close = Request::new(listings::ListingRequest {
        listing_id: "l-1".into(),
    });
    match listings.close_listing(close).await {
        Ok(_) => println!("closed: unexpected for a job"),
        Err(status) => println!("close refused as expected: {:?}", status.code()),
    }
    Ok(())
}
