//! A small HTTP/1.1 client for the HTTP listener's tests: hyper's own (already in the tree
//! for tonic), requests built by hand, answers read as JSON.
#![allow(dead_code)]

use axum::body::Bytes;
use base64::Engine as _;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub raw: Bytes,
    /// The body as JSON; `Null` when it is not JSON.
    pub json: serde_json::Value,
}

impl Answer {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A JSON field as text ("" when absent).
    pub fn field(&self, name: &str) -> &str {
        self.json[name].as_str().unwrap_or("")
    }

    /// Asserts an RFC 6749 §5.2 error answer.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.field("error"), code, "{self:?}");
        assert!(
            !self.field("error_description").is_empty(),
            "no description: {self:?}"
        );
        assert_eq!(self.header("content-type"), "application/json");
        assert_eq!(self.header("cache-control"), "no-store");
    }
}

/// A client for one base URL.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
        }
    }

    /// A client for `base` whose connections leave from `local` (a loopback address other
    /// than 127.0.0.1 stands for another host).
    pub fn new_from(base: String, local: std::net::IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(local));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base,
        }
    }

    /// A client for `base` that speaks HTTP/2 without TLS (prior knowledge, as h2load does).
    pub fn new_h2c(base: String) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
            base,
        }
    }

    /// Sends any request.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.client.request(request).await.expect("an HTTP answer");
        let (parts, body) = response.into_parts();
        let raw = body.collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        Answer {
            status: parts.status,
            headers: parts.headers,
            raw,
            json,
        }
    }

    /// POSTs a form.
    pub async fn form(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        params: &[(&str, &str)],
    ) -> Answer {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send(Method::POST, path, &all, encode(params)).await
    }

    /// POSTs a form to the token endpoint.
    pub async fn token(&self, params: &[(&str, &str)]) -> Answer {
        self.form("/v1/auth/token", &[], params).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }
}

/// `a=1&b=2`, form-encoded.
pub fn encode(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// `Basic <base64(urlencode(id):urlencode(secret))>` (RFC 6749 §2.3.1).
pub fn basic(client_id: &str, secret: &str) -> String {
    let part = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", part(client_id), part(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
