//! Connection limits (SPEC §9): a connection is held to its streams, and while some callers hold
//! every stream they may, the others are still served.
use std::time::{Duration, Instant};

use tessera::config::IntrospectionAuth;
use tessera::grpc::pb::{self, auth_service_client::AuthServiceClient};
use tokio::sync::mpsc;
use tonic::{Code, Streaming, transport::Channel};

use crate::common::TestApp;

const LIMIT: u32 = 4;
/// Streams a connection asks for beyond its limit.
const EXTRA: usize = 4;
/// Connections that hold every stream they may while another caller is measured.
const ABUSERS: usize = 8;

type Watch = Streaming<pb::WatchRevocationsResponse>;

/// A connection made now (its settings exchanged by a first call, as any client's are).
async fn connection(app: &TestApp) -> Channel {
    let channel = Channel::from_shared(app.endpoint())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    AuthServiceClient::new(channel.clone())
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("a first call");
    channel
}

/// Opens `count` WatchRevocations streams on `channel`, each sent to `opened` when it opens
/// (and held by whoever receives it). A refused stream is asked for again, as a client would.
fn open_streams(channel: &Channel, count: usize, opened: &mpsc::UnboundedSender<Watch>) {
    for _ in 0..count {
        let (channel, opened) = (channel.clone(), opened.clone());
        tokio::spawn(async move {
            loop {
                let answer = AuthServiceClient::new(channel.clone())
                    .watch_revocations(pb::WatchRevocationsRequest { after_sequence: 0 })
                    .await;
                match answer {
                    Ok(stream) => {
                        let _ = opened.send(stream.into_inner());
                        return;
                    }
                    Err(status) if status.code() == Code::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(status) => panic!("WatchRevocations refused: {status:?}"),
                }
            }
        });
    }
}

/// Receives `count` opened streams, waiting as long as a loaded machine may need.
async fn receive(opened: &mut mpsc::UnboundedReceiver<Watch>, count: usize) -> Vec<Watch> {
    let mut streams = Vec::new();
    for _ in 0..count {
        let stream = tokio::time::timeout(Duration::from_secs(30), opened.recv())
            .await
            .expect("a stream opens within 30 s")
            .expect("the openers live");
        streams.push(stream);
    }
    streams
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_held_to_its_stream_limit_and_other_callers_are_still_served() {
    let app = TestApp::spawn_with(|config| {
        config.limits.grpc_max_streams_per_connection = LIMIT;
        config.introspection_auth = IntrospectionAuth::None;
    })
    .await;
    let limit = LIMIT as usize;

    // One connection asks for more streams than it may hold: it gets its limit.
    let greedy = connection(&app).await;
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    open_streams(&greedy, limit + EXTRA, &opened_tx);
    let mut held = receive(&mut opened, limit).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        opened.try_recv().is_err(),
        "a stream beyond the connection's limit of {LIMIT} opened"
    );
    // One ends: one of those waiting takes its place, and no more.
    drop(held.pop());
    held.extend(receive(&mut opened, 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        opened.try_recv().is_err(),
        "more streams than the limit in flight"
    );

    // More connections fill their limits too, and queue more.
    let (others_tx, mut others) = mpsc::unbounded_channel();
    let mut abusers = Vec::new();
    for _ in 0..ABUSERS {
        let channel = connection(&app).await;
        open_streams(&channel, limit + EXTRA, &others_tx);
        abusers.push(channel);
    }
    let _held_by_others = receive(&mut others, ABUSERS * limit).await;

    // Meanwhile another caller is served: its latency, printed (no timing is asserted).
    let mut client = AuthServiceClient::new(connection(&app).await);
    let mut latencies = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        // UNAVAILABLE is retried as a client would (after a pause), within a bound: a server
        // that never serves this caller fails the test rather than hanging it.
        let give_up = started + Duration::from_secs(30);
        loop {
            match client.get_key_set(pb::GetKeySetRequest {}).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::Unavailable => {
                    assert!(
                        Instant::now() < give_up,
                        "GetKeySet still UNAVAILABLE after 30 s of the abuse: {status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => panic!("GetKeySet failed during the abuse: {status:?}"),
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "GetKeySet while {} connections hold {} streams each (and queue {} more): \
         p50 {:?}, p99 {:?}, max {:?} over {} calls",
        ABUSERS + 1,
        LIMIT,
        EXTRA,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        latencies.len()
    );
}
