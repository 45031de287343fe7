//! `WatchRevocations` (SPEC §7): each stream is fed from this instance's revocation view (no
//! query per stream): a snapshot or a replay from the caller's cursor, then every revocation
//! in sequence order as it commits, and a heartbeat every 5 s while idle. Streams are bounded
//! in number; a stream whose reader falls behind is ended (the caller reconnects and resumes
//! from the last sequence it saw), so that a stalled reader costs a bounded buffer.
use std::{pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, broadcast::error::RecvError, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::Status;

use super::{auth_service::timestamp, pb};
use crate::domain::{
    DomainError, TokenService,
    repository::{RevocationEvent, RevocationKind},
    revocation_view::{StreamStart, Subscription},
};

/// The streams an instance holds at most, by default (`TESSERA_MAX_WATCH_STREAMS`).
pub const DEFAULT_MAX_STREAMS: usize = 10_000;
/// How often an idle stream gets a heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Messages a stream may have waiting for its reader.
const STREAM_BUFFER: usize = 256;
/// How long a stream's reader may leave a full buffer untouched before the stream is ended.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What `WatchRevocations` answers with.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchRevocationsResponse, Status>> + Send + 'static>>;

/// Starts feeding one stream; `permit` is its place among the bounded streams, held until it
/// ends.
pub fn start(
    tokens: Arc<TokenService>,
    subscription: Subscription,
    after_sequence: u64,
    permit: OwnedSemaphorePermit,
) -> WatchStream {
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    let place = StreamPlace::taken(permit);
    tokio::spawn(feed(tokens, sender, subscription, after_sequence, place));
    Box::pin(ReceiverStream::new(receiver))
}

/// Why a stream stops being fed.
enum Stop {
    /// The reader went away: nothing to tell it.
    Gone,
    /// The reader fell behind: it is told so, in the last place of its buffer.
    Behind,
    /// The view stopped reading the log (the database is away): the stream would go on
    /// heartbeating while revocations made elsewhere go unsent. The reader is told so.
    Stale,
}

struct Outlet {
    sender: mpsc::Sender<Result<pb::WatchRevocationsResponse, Status>>,
}

impl Outlet {
    /// Sends a message as soon as the reader has room for it, within [`SEND_TIMEOUT`]. One
    /// place always stays free, for the status that ends a stream.
    async fn send(&self, event: pb::watch_revocations_response::Event) -> Result<(), Stop> {
        let message = pb::WatchRevocationsResponse { event: Some(event) };
        match tokio::time::timeout(SEND_TIMEOUT, self.sender.reserve_many(2)).await {
            Ok(Ok(mut places)) => {
                if let Some(place) = places.next() {
                    place.send(Ok(message));
                }
                Ok(())
            }
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Behind),
        }
    }

    fn end(&self, status: Status) {
        let _ = self.sender.try_send(Err(status));
    }
}

async fn feed(
    tokens: Arc<TokenService>,
    sender: mpsc::Sender<Result<pb::WatchRevocationsResponse, Status>>,
    mut subscription: Subscription,
    after_sequence: u64,
    _place: StreamPlace,
) {
    let outlet = Outlet { sender };
    let stopped = run(&tokens, &outlet, &mut subscription, after_sequence).await;
    match stopped {
        Stop::Gone => {}
        Stop::Behind => {
            tracing::info!("a WatchRevocations reader fell behind: stream ended");
            outlet.end(Status::from(DomainError::Unavailable));
        }
        Stop::Stale => {
            tracing::info!("revocations cannot be read: WatchRevocations stream ended");
            outlet.end(Status::from(DomainError::Unavailable));
        }
    }
}

async fn run(
    tokens: &TokenService,
    outlet: &Outlet,
    subscription: &mut Subscription,
    after_sequence: u64,
) -> Stop {
    use pb::watch_revocations_response::Event;
    let start = std::mem::replace(&mut subscription.start, StreamStart::Replay(Vec::new()));
    let mut last = match start {
        StreamStart::Snapshot { sequence, events } => {
            let snapshot = pb::RevocationSnapshot {
                sequence,
                revocations: events.iter().map(|e| revocation(e)).collect(),
            };
            if let Err(stop) = outlet.send(Event::Snapshot(snapshot)).await {
                return stop;
            }
            sequence
        }
        StreamStart::Replay(events) => {
            let mut last = after_sequence;
            for event in events {
                if let Err(stop) = outlet.send(Event::Revocation(revocation(&event))).await {
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
    let Subscription { feed, closing, .. } = subscription;
    loop {
        tokio::select! {
            biased;
            () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                outlet.end(Status::from(DomainError::Unavailable));
                return Stop::Gone;
            }
            () = outlet.sender.closed() => return Stop::Gone,
            received = feed.recv() => match received {
                Ok(event) if event.sequence <= last => {}
                Ok(event) => {
                    if let Err(stop) = outlet.send(Event::Revocation(revocation(&event))).await {
                        return stop;
                    }
                    last = event.sequence;
                    heartbeat.reset();
                }
                Err(RecvError::Lagged(_)) => return Stop::Behind,
                // The view ended its streams: it cannot read the log, or it was made again (the
                // log went back). The reader reconnects: refused while the view is stale, then
                // resumed.
                Err(RecvError::Closed) => return Stop::Stale,
            },
            _ = heartbeat.tick() => {
                let beat = pb::Heartbeat {
                    sequence: last,
                    server_time: Some(timestamp(tokens.now_ms())),
                };
                if let Err(stop) = outlet.send(Event::Heartbeat(beat)).await {
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

/// A stream's place among the bounded streams, counted in `tessera_watch_streams` while held.
struct StreamPlace(#[allow(dead_code)] OwnedSemaphorePermit);

impl StreamPlace {
    fn taken(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("tessera_watch_streams").increment(1.0);
        Self(permit)
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        metrics::gauge!("tessera_watch_streams").decrement(1.0);
    }
}
