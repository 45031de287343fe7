//! Several `tessera serve` processes on one database, one of them killed (`kill -9`) under
//! load: clients that retry on another instance lose no committed session, and a revocation
//! made on any instance holds on every other within a second.
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tessera::grpc::pb::{self, auth_service_client::AuthServiceClient};
use tonic::{Code, transport::Channel};

use crate::common::{
    ServeProcess, TestDb, client_credentials, introspect_on, master_key, refresh_grant, register,
};

async fn introspect(channel: &Channel, bearer: &str, token: &str) -> pb::IntrospectTokenResponse {
    introspect_on(channel, Some(bearer), token)
        .await
        .expect("introspect")
}

/// Whether a failed call may be retried on another instance: the instance is gone or
/// cannot serve right now.
/// What a client retries: an instance going away (UNAVAILABLE, or a broken connection), and
/// `slow_down` (RESOURCE_EXHAUSTED: hashing capacity full, as a busy test machine can make it).
fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::ResourceExhausted
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_instances_under_load_loses_no_committed_session() {
    let db = TestDb::new().await;
    let key = master_key(&db);
    let mut servers: Vec<ServeProcess> = (0..3)
        .map(|_| ServeProcess::start(&db, &key, "info"))
        .collect();
    let channels: Vec<Channel> = servers.iter().map(ServeProcess::channel).collect();
    let (id, secret) = register(&db, 0).await.integration;

    const WORKERS: usize = 6;
    let committed: Arc<Mutex<Vec<pb::IssueTokenResponse>>> = Arc::default();
    let retried = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the instance is dead; then each worker counts in once it has committed a session
    // again (on a survivor, after a retry when it was on the dead one).
    let killed = Arc::new(AtomicBool::new(false));
    let (carried_on, mut carried_on_rx) = tokio::sync::watch::channel([false; WORKERS]);
    let carried_on = Arc::new(carried_on);
    let (progress, mut progress_rx) = tokio::sync::watch::channel(0_usize);
    let progress = Arc::new(progress);
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (channels, committed, retried, stop) = (
            channels.clone(),
            committed.clone(),
            retried.clone(),
            stop.clone(),
        );
        let (killed, carried_on, progress) = (killed.clone(), carried_on.clone(), progress.clone());
        let (id, secret) = (id.clone(), secret.clone());
        workers.push(tokio::spawn(async move {
            let mut instance = worker % channels.len();
            while !stop.load(Ordering::SeqCst) {
                let mut client = AuthServiceClient::new(channels[instance].clone());
                match client.issue_token(client_credentials(&id, &secret)).await {
                    Ok(r) => {
                        let count = {
                            let mut committed = committed.lock().expect("lock");
                            committed.push(r.into_inner());
                            committed.len()
                        };
                        progress.send_replace(count);
                        if killed.load(Ordering::SeqCst) {
                            carried_on.send_modify(|carried_on| carried_on[worker] = true);
                        }
                    }
                    Err(status) if retryable(&status) => {
                        retried.fetch_add(1, Ordering::Relaxed);
                        instance = (instance + 1) % channels.len();
                    }
                    Err(status) => panic!("unexpected answer under load: {status:?}"),
                }
            }
        }));
    }
    // The kill lands under load: once more than 20 sessions are committed...
    tokio::time::timeout(
        Duration::from_secs(30),
        progress_rx.wait_for(|&count| count > 20),
    )
    .await
    .expect("the load committed 20 sessions within 30 s")
    .expect("the workers run");
    servers[0].child.kill().expect("kill -9");
    servers[0].child.wait().expect("reaped");
    killed.store(true, Ordering::SeqCst);
    // ...and the load goes on until every worker has committed a session after it.
    tokio::time::timeout(
        Duration::from_secs(30),
        carried_on_rx.wait_for(|workers| workers.iter().all(|&w| w)),
    )
    .await
    .expect("every worker committed a session again within 30 s of the kill")
    .expect("the workers run");
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }

    let committed = committed.lock().expect("lock").clone();
    assert!(committed.len() > 20, "the load made progress");
    let survivors = &channels[1..];
    let bearer = committed[0].access_token.clone();
    for (i, session) in committed.iter().enumerate() {
        let channel = &survivors[i % survivors.len()];
        let info = introspect(channel, &bearer, &session.refresh_token).await;
        assert!(info.active, "a session committed before the kill was lost");
    }
    // Every session refreshes on a surviving instance.
    for (i, session) in committed.iter().enumerate().step_by(7) {
        let mut client = AuthServiceClient::new(survivors[i % survivors.len()].clone());
        client
            .issue_token(refresh_grant(&id, &secret, &session.refresh_token))
            .await
            .expect("a committed session refreshes on a survivor");
    }

    // A revocation on one survivor holds on the other within a second.
    let victim = &committed[committed.len() - 1];
    AuthServiceClient::new(survivors[0].clone())
        .revoke_token(pb::RevokeTokenRequest {
            token: victim.access_token.clone(),
            token_type_hint: 0,
            client_id: id.clone(),
            client_secret: secret.clone(),
        })
        .await
        .expect("revoke");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    for channel in survivors {
        loop {
            if !introspect(channel, &bearer, &victim.access_token)
                .await
                .active
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a revocation was not seen everywhere within a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "{} sessions committed, {} calls retried on another instance",
        committed.len(),
        retried.load(Ordering::Relaxed)
    );
    servers.clear();
}
