//! WatchRevocations (SPEC §7) and the commit-ordered revocation log (SPEC §4): against the real
//! server, on SQLite and PostgreSQL.
use std::time::Duration;

use tessera::domain::clock::now_ms;
use tessera::grpc::pb::{
    self, auth_service_client::AuthServiceClient, revocation::Target,
    watch_revocations_response::Event,
};
use tessera_testkit::prelude::*;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Streaming, transport::Channel};

use crate::common::{
    TestApp, assert_invalid_client, assert_slow_down, assert_unauthorized_client, revoke_request,
};

/// How long a revocation may take to reach a stream or another instance (SPEC: one second).
const WITHIN: Duration = Duration::from_secs(1);

async fn watch_on(
    channel: Channel,
    bearer: Option<&str>,
    after_sequence: u64,
) -> Result<Streaming<pb::WatchRevocationsResponse>, tonic::Status> {
    let mut request = Request::new(pb::WatchRevocationsRequest { after_sequence });
    if let Some(bearer) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().expect("header"),
        );
    }
    AuthServiceClient::new(channel)
        .watch_revocations(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn watch(app: &TestApp, after_sequence: u64) -> Streaming<pb::WatchRevocationsResponse> {
    let bearer = app.introspection_bearer().await;
    watch_on(app.channel(), Some(&bearer), after_sequence)
        .await
        .expect("WatchRevocations opens")
}

/// The next event of a stream, within `WITHIN`.
async fn next_event(stream: &mut Streaming<pb::WatchRevocationsResponse>) -> Event {
    tokio::time::timeout(WITHIN, stream.next())
        .await
        .expect("an event within a second")
        .expect("the stream goes on")
        .expect("no error")
        .event
        .expect("an event")
}

/// The next revocation of a stream (heartbeats skipped), within `WITHIN`.
async fn next_revocation(stream: &mut Streaming<pb::WatchRevocationsResponse>) -> pb::Revocation {
    loop {
        match next_event(stream).await {
            Event::Revocation(revocation) => return revocation,
            Event::Heartbeat(_) => {}
            Event::Snapshot(snapshot) => panic!("a snapshot mid-stream: {snapshot:?}"),
        }
    }
}

async fn snapshot(stream: &mut Streaming<pb::WatchRevocationsResponse>) -> pb::RevocationSnapshot {
    match next_event(stream).await {
        Event::Snapshot(snapshot) => snapshot,
        other => panic!("expected a snapshot first, got {other:?}"),
    }
}

/// A user's login on `app`: the marketplace client and the access token's sid.
async fn user_login(app: &TestApp, username: &str) -> (String, pb::IssueTokenResponse, String) {
    let client = app.marketplace_client().await;
    app.user(username, "correct horse battery staple").await;
    let login = app
        .login(&client, username, "correct horse battery staple")
        .await
        .expect("login");
    let sid = app.introspect(&login.access_token).await.sid;
    (client, login, sid)
}

async fn logout(app: &TestApp, client: &str, token: &str) {
    AuthServiceClient::new(app.channel())
        .revoke_token(revoke_request(client, "", token))
        .await
        .expect("logout");
}

#[tokio::test]
async fn a_stream_starts_with_a_snapshot_and_then_gets_each_logout_as_it_commits() {
    let app = TestApp::spawn().await;
    let (client, login, sid) = user_login(&app, "ann@example.com").await;
    let mut stream = watch(&app, 0).await;
    let first = snapshot(&mut stream).await;
    assert!(first.revocations.is_empty(), "{first:?}");
    logout(&app, &client, &login.access_token).await;
    let revocation = next_revocation(&mut stream).await;
    assert_eq!(revocation.target, Some(Target::SessionId(sid)));
    assert!(revocation.sequence > first.sequence);
    let seconds = |t: Option<prost_types::Timestamp>| t.expect("a time").seconds;
    assert!(seconds(revocation.expire_time) > seconds(revocation.revoke_time));
}

#[tokio::test]
async fn a_stream_on_another_instance_sees_a_logout_within_a_second() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let (client, login, sid) = user_login(&a, "bea@example.com").await;
    let mut stream = watch(&b, 0).await;
    snapshot(&mut stream).await;
    logout(&a, &client, &login.access_token).await;
    assert_eq!(
        next_revocation(&mut stream).await.target,
        Some(Target::SessionId(sid))
    );
}

#[tokio::test]
async fn a_thousand_streams_on_one_instance_all_see_a_logout() {
    let app = TestApp::spawn().await;
    let (client, login, sid) = user_login(&app, "cid@example.com").await;
    let bearer = app.introspection_bearer().await;
    // Ten connections of a hundred streams each.
    let channels: Vec<Channel> = (0..10)
        .map(|_| {
            Channel::from_shared(app.endpoint())
                .expect("uri")
                .connect_lazy()
        })
        .collect();
    let mut streams = Vec::new();
    for i in 0..1_000 {
        let mut stream = watch_on(channels[i % 10].clone(), Some(&bearer), 0)
            .await
            .expect("opens");
        snapshot(&mut stream).await;
        streams.push(stream);
    }
    logout(&app, &client, &login.access_token).await;
    let seen = futures_seen(streams).await;
    assert!(
        seen.iter()
            .all(|t| *t == Some(Target::SessionId(sid.clone())))
    );
    assert_eq!(seen.len(), 1_000);
}

/// The first revocation of every stream, all read at once.
async fn futures_seen(
    streams: Vec<Streaming<pb::WatchRevocationsResponse>>,
) -> Vec<Option<Target>> {
    let mut reading = tokio::task::JoinSet::new();
    for mut stream in streams {
        reading.spawn(async move { next_revocation(&mut stream).await.target });
    }
    let mut seen = Vec::new();
    while let Some(target) = reading.join_next().await {
        seen.push(target.expect("reader"));
    }
    seen
}

#[tokio::test]
async fn a_stream_resumed_with_its_last_sequence_misses_nothing_and_sees_nothing_twice() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.anonymous_token(&client).await);
    }
    let mut stream = watch(&app, 0).await;
    let start = snapshot(&mut stream).await.sequence;
    for token in &tokens[..3] {
        logout(&app, &client, token).await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_revocation(&mut stream).await.sequence);
    }
    drop(stream);
    // Revoked while no stream is open.
    for token in &tokens[3..] {
        logout(&app, &client, token).await;
    }
    let last = *seen.last().expect("seen");
    let mut resumed = watch(&app, last).await;
    for _ in 0..3 {
        seen.push(next_revocation(&mut resumed).await.sequence);
    }
    let expected: Vec<u64> = (start + 1..=start + 6).collect();
    assert_eq!(seen, expected);
    // Nothing more comes: the next event is a heartbeat, not a repeat.
    let nothing = tokio::time::timeout(Duration::from_millis(300), resumed.next()).await;
    assert!(nothing.is_err(), "{nothing:?}");
}

#[tokio::test]
async fn revoking_an_anonymous_token_twice_logs_it_once() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let token = app.anonymous_token(&client).await;
    let mut stream = watch(&app, 0).await;
    let start = snapshot(&mut stream).await.sequence;
    for _ in 0..5 {
        logout(&app, &client, &token).await;
    }
    assert_eq!(next_revocation(&mut stream).await.sequence, start + 1);
    let live = app.store.live_revocations(now_ms()).await.expect("log");
    assert_eq!(live.head, start + 1, "one event for five revocations");
    // A second instance that had not seen it writes nothing either.
    let other = app.sibling().await;
    logout(&other, &client, &token).await;
    let live = app.store.live_revocations(now_ms()).await.expect("log");
    assert_eq!(live.head, start + 1);
}

#[tokio::test]
async fn a_revocation_stamped_by_a_clock_an_hour_behind_is_seen_by_every_instance() {
    let app = TestApp::spawn().await;
    let (_client, login, sid) = user_login(&app, "dee@example.com").await;
    let other = app.sibling().await;
    assert!(other.introspect(&login.access_token).await.active);
    let mut stream = watch(&other, 0).await;
    snapshot(&mut stream).await;
    // `tessera user disable` run from a laptop whose clock is an hour behind.
    let user = app
        .store
        .find_user_by_username("dee@example.com")
        .await
        .expect("query")
        .expect("user");
    let hour_ago = now_ms() - 3_600_000;
    assert!(
        app.store
            .disable_user(&user.user_id, hour_ago, hour_ago + 7_200_000)
            .await
            .expect("disable")
    );
    assert_eq!(
        next_revocation(&mut stream).await.target,
        Some(Target::SessionId(sid))
    );
    other
        .assert_inactive_within_a_second(&login.access_token)
        .await;
    app.assert_inactive_within_a_second(&login.access_token)
        .await;
}

#[tokio::test]
async fn a_revocation_committed_long_after_it_was_stamped_is_seen_within_a_second_of_its_commit() {
    // What a revoking transaction held open (a lock wait, a queued write, a fail-over) looks
    // like to the log: an event stamped well before it commits. Instances follow by sequence,
    // so its time does not matter.
    let app = TestApp::spawn().await;
    let (_client, login, sid) = user_login(&app, "eve@example.com").await;
    let other = app.sibling().await;
    assert!(other.introspect(&login.access_token).await.active);
    let stamped = now_ms() - 15_000;
    app.store
        .end_session(&sid, stamped, "revoked", now_ms() + 600_000)
        .await
        .expect("end")
        .expect("a new event");
    other
        .assert_inactive_within_a_second(&login.access_token)
        .await;
}

#[tokio::test]
async fn a_revoking_transaction_held_open_while_later_ones_commit_is_seen_once_it_commits() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        // SQLite has one writer: a held revoking transaction makes every other one wait, so
        // commit order is write order there (the test above covers a late commit).
        return;
    }
    let (client, login, sid) = user_login(&app, "fay@example.com").await;
    let anonymous = app.anonymous_token(&client).await;
    let other = app.sibling().await;
    // A logout whose transaction stamps its work, then stalls (a lock wait, a fail-over)...
    let stamped = now_ms() - 15_000;
    let held = app.store.connection().begin().await.expect("begin");
    held.execute_unprepared(&format!(
        "UPDATE sessions SET ended_at = {stamped}, end_reason = 'revoked' WHERE sid = '{sid}'"
    ))
    .await
    .expect("end the session");
    // ...while a later revocation commits, and the other instance reads past it...
    logout(&app, &client, &anonymous).await;
    other.assert_inactive_within_a_second(&anonymous).await;
    assert!(other.introspect(&login.access_token).await.active);
    // ...then the held one takes its number, last, and commits.
    let next = held
        .query_one_raw(Statement::from_string(
            held.get_database_backend(),
            "UPDATE revocation_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
        ))
        .await
        .expect("number")
        .expect("the counter");
    let sequence: i64 = next.try_get("", "last").expect("last");
    held.execute_unprepared(&format!(
        "INSERT INTO revocation_log (sequence, kind, subject, revoked_at, expires_at) \
         VALUES ({sequence}, 'session', '{sid}', {stamped}, {})",
        now_ms() + 600_000
    ))
    .await
    .expect("log");
    held.commit().await.expect("commit");
    other
        .assert_inactive_within_a_second(&login.access_token)
        .await;
}

#[tokio::test]
async fn a_disabled_client_reaches_streams_as_a_client_revocation() {
    let app = TestApp::spawn().await;
    let (id, _secret, _) = app.integration_login().await;
    let mut stream = watch(&app, 0).await;
    snapshot(&mut stream).await;
    assert!(app.disable_client(&id).await);
    assert_eq!(
        next_revocation(&mut stream).await.target,
        Some(Target::ClientId(id))
    );
}

#[tokio::test]
async fn a_stream_without_a_bearer_or_with_a_bad_one_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&client).await;
    assert_invalid_client(watch_on(app.channel(), None, 0).await);
    for bad in [anonymous.as_str(), "garbage"] {
        assert_unauthorized_client(watch_on(app.channel(), Some(bad), 0).await);
    }
}

#[tokio::test]
async fn streams_beyond_the_bound_are_refused_with_resource_exhausted() {
    let app = TestApp::spawn_with(|c| c.max_watch_streams = 2).await;
    let first = watch(&app, 0).await;
    let _second = watch(&app, 0).await;
    let bearer = app.introspection_bearer().await;
    assert_slow_down(watch_on(app.channel(), Some(&bearer), 0).await);
    // A stream that ends gives its place back, once the server hears of the end.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        if let Ok(stream) = watch_on(app.channel(), Some(&bearer), 0).await {
            break stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::task::yield_now().await;
    };
    drop(reopened);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off() {
    let app = TestApp::spawn().await;
    let mut stalled = watch(&app, 0).await;
    snapshot(&mut stalled).await;
    // More revocations than the feed holds for a stream that does not keep up, plus what the
    // connection's windows and send buffers absorb (megabytes), committed at once.
    flood_the_log(&app, 60_000).await;
    // The reader stays stalled until the instance has sent the whole flood to its feed.
    let head = app.store.live_revocations(0).await.expect("log").head;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.tokens.revocations().sequence() < head {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never reached the feed"
        );
        tokio::task::yield_now().await;
    }
    // Reading again drains what was buffered, then the server's verdict.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stalled.next().await {
                Some(Ok(_)) => {}
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The instance goes on serving other streams, once its view has caught up with the flood
    // (until then, and on a loaded machine whenever its view falls behind, a stream is refused
    // with UNAVAILABLE and the reader tries again, as a real one does).
    let bearer = app.introspection_bearer().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let head = app.tokens.revocations().sequence();
        match watch_on(app.channel(), Some(&bearer), head).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the instance never served a stream again: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_reader_that_keeps_reading_gets_a_burst_whole_and_in_order() {
    let app = TestApp::spawn().await;
    let mut reader = watch(&app, 0).await;
    let start = snapshot(&mut reader).await.sequence;
    let reading = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 5_000 {
            seen.push(next_revocation(&mut reader).await.sequence);
        }
        seen
    });
    flood_the_log(&app, 5_000).await;
    let seen = reading.await.expect("reader");
    let expected: Vec<u64> = (start + 1..=start + 5_000).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_cursor_older_than_what_the_server_holds_gets_a_snapshot() {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    let client = app.marketplace_client().await;
    let mut stream = watch(&app, 0).await;
    snapshot(&mut stream).await;
    let mut forgotten = 0;
    for _ in 0..2 {
        let old = app.anonymous_token(&client).await;
        logout(&app, &client, &old).await;
        forgotten = next_revocation(&mut stream).await.sequence;
    }
    drop(stream);
    // Past the token's expiry: the server forgets its revocation.
    app.advance(Duration::from_secs(11 * 60)).await;
    let new = app.anonymous_token(&client).await;
    logout(&app, &client, &new).await;
    // A cursor between two forgotten revocations: not 0, yet older than what is held.
    let mut resumed = watch(&app, forgotten - 1).await;
    let snapshot = snapshot(&mut resumed).await;
    assert_eq!(snapshot.revocations.len(), 1, "{snapshot:?}");
    assert!(snapshot.revocations[0].sequence > forgotten);
}

/// Commits `count` token revocations in one transaction, numbered as the log numbers them.
async fn flood_the_log(app: &TestApp, count: i64) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let now = now_ms();
    let txn = app.store.connection().begin().await.expect("begin");
    // Subjects as long as a jti gets, so that every message weighs what a real one does.
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO revocation_log (sequence, kind, subject, revoked_at, expires_at) \
         SELECT (SELECT last FROM revocation_sequence WHERE id = 1) + i, 'token', \
                'flood-0123456789abcdef0123456789abcdef0123456789-' || i, {now}, {} FROM n",
        now + 600_000
    );
    txn.execute_unprepared(&insert).await.expect("flood");
    txn.execute_unprepared(&format!(
        "UPDATE revocation_sequence SET last = last + {count} WHERE id = 1"
    ))
    .await
    .expect("counter");
    txn.commit().await.expect("commit");
}

#[tokio::test]
async fn events_of_a_kind_this_version_does_not_know_hold_nothing_up() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let token = app.anonymous_token(&client).await;
    let mut stream = watch(&app, 0).await;
    let start = snapshot(&mut stream).await.sequence;
    // What a newer release might write: a full read batch and more of a kind unknown here.
    let txn = app.store.connection().begin().await.expect("begin");
    let now = now_ms();
    txn.execute_unprepared(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) \
         INSERT INTO revocation_log (sequence, kind, subject, revoked_at, expires_at) \
         SELECT {start} + i, 'future', 'x-' || i, {now}, {} FROM n",
        now + 600_000
    ))
    .await
    .expect("unknown kinds");
    txn.execute_unprepared("UPDATE revocation_sequence SET last = last + 1500 WHERE id = 1")
        .await
        .expect("counter");
    txn.commit().await.expect("commit");
    logout(&app, &client, &token).await;
    let next = next_revocation(&mut stream).await;
    assert_eq!(next.sequence, start + 1_501);
    assert!(matches!(next.target, Some(Target::TokenId(_))));
}
