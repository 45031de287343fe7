//! The shared fixtures come from tessera-testkit; what needs this package's own binary
//! (a real `tessera serve` process) lives here.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub use tessera_testkit::*;

/// Asserts that a `tessera` command succeeded, showing its stderr when it did not.
pub fn assert_success(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A real `tessera serve` process on port 0, logging JSON to a file in the test's directory.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: String,
    /// The HTTP listener's address.
    pub http_addr: String,
    /// The metrics listener's address.
    pub metrics_addr: String,
    log_path: std::path::PathBuf,
}

impl ServeProcess {
    /// Starts `tessera serve` and reads the bound address from its own log line.
    pub fn start(db: &TestDb, master_key: &str, rust_log: &str) -> Self {
        Self::start_with_env(db, master_key, rust_log, &[])
    }

    /// [`ServeProcess::start`] with more environment variables (OTEL_*, limits).
    pub fn start_with_env(
        db: &TestDb,
        master_key: &str,
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Self {
        use std::process::{Command, Stdio};
        let log_path = db
            .dir
            .path()
            .join(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.arg("serve")
            .env("TESSERA_DATABASE_URL", &db.url)
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_HTTP_LISTEN", "127.0.0.1:0")
            .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0")
            .env("TESSERA_LOG_FORMAT", "json")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log);
        if !master_key.is_empty() {
            cmd.env("TESSERA_MASTER_KEY", master_key);
        }
        cmd.envs(env.iter().copied());
        let mut server = Self {
            child: cmd.spawn().expect("spawn tessera"),
            addr: String::new(),
            http_addr: String::new(),
            metrics_addr: String::new(),
            log_path,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = server.log();
            let addr_of = |message: &str| {
                let line = text.lines().find(|l| l.contains(message))?;
                let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
                Some(v["fields"]["addr"].as_str().expect("addr field").to_owned())
            };
            if let (Some(addr), Some(http_addr), Some(metrics_addr)) = (
                addr_of("serving tessera.auth.v1.AuthService"),
                addr_of("serving HTTP"),
                addr_of("serving metrics"),
            ) {
                server.addr = addr;
                server.http_addr = http_addr;
                server.metrics_addr = metrics_addr;
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A channel to the process.
    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect_lazy()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service's health as a server pushes it: every status from the current one on.
pub struct HealthWatch(tonic::Streaming<tonic_health::pb::HealthCheckResponse>);

impl HealthWatch {
    /// Watches `tessera.auth.v1.AuthService` on `channel`.
    pub async fn start(channel: Channel) -> Self {
        let stream = HealthClient::new(channel)
            .watch(HealthCheckRequest {
                service: "tessera.auth.v1.AuthService".into(),
            })
            .await
            .expect("watch")
            .into_inner();
        Self(stream)
    }

    /// Waits for the server to report `status`, for at most `within`: `false` when it does not
    /// (the stream ends or the time is up). Statuses before it are skipped.
    pub async fn reports(&mut self, status: ServingStatus, within: Duration) -> bool {
        let wanted = async {
            while let Some(Ok(update)) = self.0.next().await {
                if update.status == status as i32 {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(within, wanted).await.unwrap_or(false)
    }
}
