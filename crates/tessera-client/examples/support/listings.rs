//! A small marketplace service, `example.listings.v1.Listings`, protected by Tessera:
//!
//! | method           | who may call it                                        |
//! |------------------|--------------------------------------------------------|
//! | `GetListing`     | an end user (`user`, or `trusted:user`)                |
//! | `CloseListing`   | a trusted context only (`trusted:user`): privileged    |
//! | `ExportListings` | a back-end job (`integ`)                               |
//!
//! Its messages are written by hand with prost and its server and client with tonic's own
//! building blocks, so that the example needs no proto compiler and no build script.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tessera_client::{AuthLayer, Claims, Verifier};
use tonic::{
    Request, Response, Status,
    body::Body,
    client::GrpcService,
    codegen::{Body as HttpBody, Bytes, http, http::uri::PathAndQuery},
    server::NamedService,
};
use tonic_prost::ProstCodec;
use tower::service_fn;

pub const SERVICE: &str = "example.listings.v1.Listings";
pub const GET_LISTING: &str = "/example.listings.v1.Listings/GetListing";
pub const CLOSE_LISTING: &str = "/example.listings.v1.Listings/CloseListing";
pub const EXPORT_LISTINGS: &str = "/example.listings.v1.Listings/ExportListings";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListingRequest {
    #[prost(string, tag = "1")]
    pub listing_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Listing {
    #[prost(string, tag = "1")]
    pub listing_id: String,
    #[prost(string, tag = "2")]
    pub title: String,
    #[prost(bool, tag = "3")]
    pub closed: bool,
    /// Who asked: the token's subject.
    #[prost(string, tag = "4")]
    pub viewer: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    #[prost(uint32, tag = "1")]
    pub listings: u32,
    /// The client that exported them.
    #[prost(string, tag = "2")]
    pub exported_by: String,
}

/// The scopes each method needs: the whole of the service's access rules.
pub fn auth_layer(verifier: Verifier) -> AuthLayer {
    AuthLayer::new(verifier)
        .require_scope_for(GET_LISTING, "user")
        .require_scope_for(CLOSE_LISTING, "trusted:user")
        .require_scope_for(EXPORT_LISTINGS, "integ")
}

async fn get_listing(request: Request<ListingRequest>) -> Result<Response<Listing>, Status> {
    let viewer = viewer(&request);
    Ok(Response::new(Listing {
        listing_id: request.into_inner().listing_id,
        title: "A sunny flat".into(),
        closed: false,
        viewer,
    }))
}

async fn close_listing(request: Request<ListingRequest>) -> Result<Response<Listing>, Status> {
    let viewer = viewer(&request);
    Ok(Response::new(Listing {
        listing_id: request.into_inner().listing_id,
        title: "A sunny flat".into(),
        closed: true,
        viewer,
    }))
}

async fn export_listings(
    request: Request<ExportRequest>,
) -> Result<Response<ExportResponse>, Status> {
    Ok(Response::new(ExportResponse {
        listings: 42,
        exported_by: viewer(&request),
    }))
}

/// The token's subject, or nobody when the service runs without the layer.
fn viewer<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Claims>()
        .map(|claims| claims.subject().to_owned())
        .unwrap_or_default()
}

/// The server half: routes each method to its handler.
#[derive(Clone, Debug, Default)]
pub struct ListingsServer;

impl NamedService for ListingsServer {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for ListingsServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let response = match request.uri().path() {
                GET_LISTING => {
                    tonic::server::Grpc::new(ProstCodec::<Listing, ListingRequest>::default())
                        .unary(service_fn(get_listing), request)
                        .await
                }
                CLOSE_LISTING => {
                    tonic::server::Grpc::new(ProstCodec::<Listing, ListingRequest>::default())
                        .unary(service_fn(close_listing), request)
                        .await
                }
                EXPORT_LISTINGS => {
                    tonic::server::Grpc::new(ProstCodec::<ExportResponse, ExportRequest>::default())
                        .unary(service_fn(export_listings), request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

/// The client half, on any channel (a plain one, or one with a bearer interceptor).
#[derive(Clone, Debug)]
pub struct ListingsClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> ListingsClient<T>
where
    T: GrpcService<Body>,
    T::Error: Into<tower::BoxError>,
    T::ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<tower::BoxError> + Send,
{
    pub fn new(inner: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    async fn unary<Req, Res>(
        &mut self,
        request: Request<Req>,
        path: &'static str,
    ) -> Result<Res, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Res: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service not ready: {}", e.into())))?;
        self.inner
            .unary(
                request,
                PathAndQuery::from_static(path),
                ProstCodec::<Req, Res>::default(),
            )
            .await
            .map(Response::into_inner)
    }

    pub async fn get_listing(
        &mut self,
        request: Request<ListingRequest>,
    ) -> Result<Listing, Status> {
        self.unary(request, GET_LISTING).await
    }

    pub async fn close_listing(
        &mut self,
        request: Request<ListingRequest>,
    ) -> Result<Listing, Status> {
        self.unary(request, CLOSE_LISTING).await
    }

    pub async fn export_listings(&mut self) -> Result<ExportResponse, Status> {
        self.unary(Request::new(ExportRequest {}), EXPORT_LISTINGS)
            .await
    }
}
