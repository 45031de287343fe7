//! `WatchRevocations` (SPEC §7): each stream is fed from this instance's revocation view (no
//! query per stream): a snapshot or a replay from the caller's cursor, then every revocation
//! in sequence order as it commits, and a heartbeat every 5 s while idle. Streams are bounded
//! in number; a stream whose reader falls behind is ended (the caller reconnects and resumes
//! from the last sequence it saw), so that a stalled reader costs a bounded buffer.
use std::{pin::Pin, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, broadcast::error::RecvError, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::Status;

use super::{auth_service::timestamp, pb};
use crate::domain::{
    DomainError,
    clock::now_ms,
    repository::{RevocationEvent, RevocationKind},
    revocation_view::{StreamStart, Subscription},
};

/// The streams an instance holds at most, by default (`TESSERA_MAX_WATCH_STREAMS`).
pub const DEFAULT_MAX_STREAMS: usize = 10_000;
/// How often an idle stream gets a heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Messages a stream may have waiting for its reader before it is ended.
const STREAM_BUFFER: usize = 256;

/// What `WatchRevocations` answers with.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchRevocationsResponse, Status>> + Send + 'static>>;

/// Starts feeding one stream; `permit` is its place among the bounded streams, held until it
/// ends.
pub fn start(
    subscription: Subscription,
    after_sequence: u64,
    permit: OwnedSemaphorePermit,
) -> WatchStream {
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(feed(sender, subscription, after_sequence, permit));
    Box::pin(ReceiverStream::new(receiver))
}

/// Why a stream stops being fed.
enum Stop {
    /// The reader went away: nothing to tell it.
    Gone,
    /// The reader fell behind: it is told so, in the last place of its buffer.
    Behind,
}

struct Outlet {
    sender: mpsc::Sender<Result<pb::WatchRevocationsResponse, Status>>,
}

impl Outlet {
    fn send(&self, event: pb::watch_revocations_response::Event) -> Result<(), Stop> {
        if self.sender.is_closed() {
            return Err(Stop::Gone);
        }
        // One place stays free for the status that ends a stream whose reader is behind.
        if self.sender.capacity() <= 1 {
            return Err(Stop::Behind);
        }
        let message = pb::WatchRevocationsResponse { event: Some(event) };
        self.sender.try_send(Ok(message)).map_err(|_| Stop::Behind)
    }

    fn end(&self, status: Status) {
        let _ = self.sender.try_send(Err(status));
    }
}

async fn feed(
    sender: mpsc::Sender<Result<pb::WatchRevocationsResponse, Status>>,
    mut subscription: Subscription,
    after_sequence: u64,
    _permit: OwnedSemaphorePermit,
) {
    let outlet = Outlet { sender };
    let stopped = run(&outlet, &mut subscription, after_sequence).await;
    match stopped {
        Stop::Gone => {}
        Stop::Behind => {
            tracing::info!("a WatchRevocations reader fell behind: stream ended");
            outlet.end(Status::from(DomainError::Unavailable));
        }
    }
}

async fn run(outlet: &Outlet, subscription: &mut Subscription, after_sequence: u64) -> Stop {
    use pb::watch_revocations_response::Event;
    let start = std::mem::replace(&mut subscription.start, StreamStart::Replay(Vec::new()));
    let mut last = match start {
        StreamStart::Snapshot { sequence, events } => {
            let snapshot = pb::RevocationSnapshot {
                sequence,
                revocations: events.iter().map(|e| revocation(e)).collect(),
            };
            if let Err(stop) = outlet.send(Event::Snapshot(snapshot)) {
                return stop;
            }
            sequence
        }
        StreamStart::Replay(events) => {
            let mut last = after_sequence;
            for event in events {
                if let Err(stop) = outlet.send(Event::Revocation(revocation(&event))) {
                    return stop;
                }
                last = last.max(event.sequence);
            }
            last
        }
    };
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_EVERY,
        HEARTBEAT_EVERY,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = subscription.closing.wait_for(|closing| *closing) => {
                outlet.end(Status::from(DomainError::Unavailable));
                return Stop::Gone;
            }
            () = outlet.sender.closed() => return Stop::Gone,
            received = subscription.feed.recv() => match received {
                Ok(event) if event.sequence <= last => {}
                Ok(event) => {
                    if let Err(stop) = outlet.send(Event::Revocation(revocation(&event))) {
                        return stop;
                    }
                    last = event.sequence;
                    heartbeat.reset();
                }
                Err(RecvError::Lagged(_)) => return Stop::Behind,
                Err(RecvError::Closed) => return Stop::Gone,
            },
            _ = heartbeat.tick() => {
                let beat = pb::Heartbeat {
                    sequence: last,
                    server_time: Some(timestamp(now_ms())),
                };
                if let Err(stop) = outlet.send(Event::Heartbeat(beat)) {
                    return stop;
                }
            }
        }
    }
}

fn revocation(event: &RevocationEvent) -> pb::Revocation {
    use pb::revocation::Target;
    let target = match event.kind {
        RevocationKind::Session => Target::SessionId(event.subject.clone()),
        RevocationKind::Token => Target::TokenId(event.subject.clone()),
        RevocationKind::Client => Target::ClientId(event.subject.clone()),
    };
    pb::Revocation {
        sequence: event.sequence,
        target: Some(target),
        revoke_time: Some(timestamp(event.revoked_at)),
        expire_time: Some(timestamp(event.expires_at)),
    }
}
