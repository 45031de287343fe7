//! The protobuf codec of AuthService: prost's, except that a request that does not decode is
//! answered INVALID_ARGUMENT `invalid_request` with its ErrorInfo, like every other bad input,
//! instead of tonic's bare INTERNAL.
use std::collections::HashMap;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstCodec;
use tonic_types::{ErrorDetails, StatusExt};

use crate::ERROR_DOMAIN;

/// [`ProstCodec`] with bad requests reported as such.
#[derive(Debug, Clone)]
pub struct ReasonedCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for ReasonedCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ReasonedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = ReasonedDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReasonedDecoder(self.inner.decoder())
    }
}

/// A decoder whose failures are the sender's fault.
#[derive(Debug)]
pub struct ReasonedDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for ReasonedDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        self.0.decode(buf).map_err(|_| undecodable_request())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status of a request that does not decode: what the server's own `invalid_request` errors
/// look like (SPEC §4), with the whole request as the bad field.
fn undecodable_request() -> Status {
    const FIELD: &str = "request";
    const DESCRIPTION: &str = "is not a valid protobuf encoding of the request message";
    let mut details =
        ErrorDetails::with_error_info("invalid_request", ERROR_DOMAIN, HashMap::new());
    details.add_bad_request_violation(FIELD, DESCRIPTION);
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {FIELD}: {DESCRIPTION}"),
        details,
    )
}
