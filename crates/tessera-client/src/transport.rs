//! How this crate reaches Tessera: a [`tonic::transport::Channel`], or any tower service that
//! carries gRPC calls (a channel wrapped in layers of the caller's own: metrics, retries,
//! counting in tests), boxed so that the types using it are not generic.
use tessera_proto::pb::auth_service_client::AuthServiceClient;
use tonic::body::Body;
use tower::{BoxError, ServiceExt, util::BoxCloneSyncService};
use tower_service::Service;

/// A connection to Tessera's gRPC API.
pub type Transport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// A call that did not reach Tessera (or got no answer), from the underlying service.
///
/// A concrete type rather than a boxed error itself: generated clients need
/// `Error: Into<Box<dyn Error>>`, which the compiler proves for a concrete type inside futures
/// that must be `Send`, and not always for a boxed trait object.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(BoxError);

/// Boxes any gRPC-carrying service (such as a [`tonic::transport::Channel`]) as a
/// [`Transport`].
pub fn transport<S>(service: S) -> Transport
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_err(|error: S::Error| TransportError(error.into())))
}

/// The AuthService client on a transport.
pub(crate) fn auth_client(transport: &Transport) -> AuthServiceClient<Transport> {
    AuthServiceClient::new(transport.clone())
}
