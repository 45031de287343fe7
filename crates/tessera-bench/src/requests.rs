//! Every request the load sends, in one place, and how its outcome is counted.
use std::time::Duration;

use tessera::grpc::pb::{self, auth_service_client::AuthServiceClient};
use tessera_testkit::{
    client_credentials, introspect_request, password_grant, refresh_grant, revoke_request,
};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

/// One request's outcome: OK, or the key it is counted under.
pub type Outcome = Result<(), String>;

/// The code's name; RESOURCE_EXHAUSTED also says whether its RetryInfo asks for at most a
/// second (hashing capacity full) or longer (a throttle lockout).
pub fn status_key(status: &Status) -> String {
    if status.code() == Code::ResourceExhausted
        && let Some(delay) = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
    {
        let class = if delay <= Duration::from_secs(1) {
            "retry<=1s"
        } else {
            "retry>1s"
        };
        return format!("ResourceExhausted({class})");
    }
    format!("{:?}", status.code())
}

/// The clients of one connection, and the requests sent on it.
#[derive(Clone)]
pub struct Caller {
    auth: AuthServiceClient<Channel>,
    health: HealthClient<Channel>,
}

impl Caller {
    pub fn new(channel: Channel) -> Self {
        Self {
            auth: AuthServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }
    }

    /// grpc.health.v1.Health/Check of the whole server: OK when it is SERVING.
    pub async fn health(&mut self) -> Result<(), HealthError> {
        let answer = self
            .health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(HealthError::Status)?
            .into_inner();
        if answer.status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(HealthError::NotServing(
                ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown),
            ))
        }
    }

    /// IntrospectToken, authorised by `bearer`.
    pub async fn introspect(
        &mut self,
        bearer: &MetadataValue<Ascii>,
        token: &str,
    ) -> Result<pb::IntrospectTokenResponse, Status> {
        self.auth
            .introspect_token(introspect_request(bearer, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// IntrospectToken: OK when the token is active.
    pub async fn introspect_active(
        &mut self,
        bearer: &MetadataValue<Ascii>,
        token: &str,
    ) -> Outcome {
        let answer = self
            .introspect(bearer, token)
            .await
            .map_err(|s| status_key(&s))?;
        if answer.active {
            Ok(())
        } else {
            Err("OK(active=false)".into())
        }
    }

    /// IssueToken, client_credentials.
    pub async fn issue(
        &mut self,
        client_id: &str,
        secret: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.auth
            .issue_token(client_credentials(client_id, secret))
            .await
            .map(tonic::Response::into_inner)
    }

    /// IssueToken, client_credentials of a public client: its access token.
    pub async fn issue_anonymous(&mut self, market_id: &str) -> Result<String, String> {
        self.issue(market_id, "")
            .await
            .map(|r| r.access_token)
            .map_err(|s| status_key(&s))
    }

    /// IssueToken, client_credentials of a confidential client.
    pub async fn issue_integration(&mut self, integ_id: &str, integ_secret: &str) -> Outcome {
        self.issue(integ_id, integ_secret)
            .await
            .map(drop)
            .map_err(|s| status_key(&s))
    }

    /// IssueToken, password grant: the new session's refresh token.
    pub async fn log_in(
        &mut self,
        market_id: &str,
        username: &str,
        password: &str,
    ) -> Result<String, Status> {
        self.auth
            .issue_token(password_grant(market_id, username, password))
            .await
            .map(|r| r.into_inner().refresh_token)
    }

    /// IssueToken, password grant, sent by a proxy on behalf of the end user at `address`.
    pub async fn log_in_from(
        &mut self,
        market_id: &str,
        username: &str,
        password: &str,
        address: &MetadataValue<Ascii>,
    ) -> Outcome {
        let mut request = tonic::Request::new(password_grant(market_id, username, password));
        request
            .metadata_mut()
            .insert("x-forwarded-for", address.clone());
        self.auth
            .issue_token(request)
            .await
            .map(drop)
            .map_err(|s| status_key(&s))
    }

    /// A password login retried while hashing capacity is full.
    pub async fn log_in_retrying(
        &mut self,
        market_id: &str,
        username: &str,
        password: &str,
    ) -> Result<String, Status> {
        let mut attempt = 0u64;
        loop {
            match self.log_in(market_id, username, password).await {
                Err(s) if s.code() == Code::ResourceExhausted && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 * attempt.min(10))).await;
                }
                other => return other,
            }
        }
    }

    /// IssueToken, refresh grant: the rotated refresh token.
    pub async fn rotate(&mut self, market_id: &str, refresh_token: &str) -> Result<String, String> {
        let answer = self
            .auth
            .issue_token(refresh_grant(market_id, "", refresh_token))
            .await
            .map_err(|s| status_key(&s))?
            .into_inner();
        if answer.refresh_token.is_empty() {
            return Err("OK(no refresh token)".into());
        }
        Ok(answer.refresh_token)
    }

    /// RevokeToken, by a public client.
    pub async fn revoke(&mut self, market_id: &str, token: &str) -> Outcome {
        self.auth
            .revoke_token(revoke_request(market_id, "", token))
            .await
            .map(drop)
            .map_err(|s| status_key(&s))
    }
}

/// A health check that did not say SERVING.
pub enum HealthError {
    Status(Status),
    NotServing(ServingStatus),
}
