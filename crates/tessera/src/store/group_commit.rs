//! Group commit: writes that arrive while a transaction commits wait for the next one and
//! share it. A commit costs about the same for one row as for a hundred (on SQLite every write
//! also waits for the one before), so under load many callers pay for one commit; alone, a
//! caller commits at once.
//!
//! A caller queues its item and spawns a commit task; the task that holds the leader lock
//! takes everything queued (up to a batch) and answers each caller. The commit runs on a task
//! of its own, so that a caller who goes away does not abort a batch holding other callers'
//! writes.
use std::future::Future;

use sea_orm::DbErr;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::StoreError;

type Answer<Done> = oneshot::Sender<Result<Done, StoreError>>;

/// Items waiting for a commit, and the lock the committing task holds.
#[derive(Debug)]
pub(super) struct GroupCommit<Item, Done> {
    pending: parking_lot::Mutex<Vec<(Item, Answer<Done>)>>,
    leader: tokio::sync::Mutex<()>,
    batch: usize,
}

impl<Item, Done> GroupCommit<Item, Done>
where
    Item: Send + 'static,
    Done: Send + 'static,
{
    /// A queue that commits at most `batch` items in one transaction.
    pub(super) fn new(batch: usize) -> Self {
        Self {
            pending: parking_lot::Mutex::new(Vec::new()),
            leader: tokio::sync::Mutex::new(()),
            batch,
        }
    }

    /// Queues `item`, makes sure a commit will take it, and waits for its outcome. `commit`
    /// writes a batch in one transaction and returns one outcome per item, in order.
    pub(super) async fn submit<Commit, Committing>(
        self: &std::sync::Arc<Self>,
        item: Item,
        commit: Commit,
    ) -> Result<Done, StoreError>
    where
        Commit: FnOnce(Vec<Item>) -> Committing + Send + 'static,
        Committing: Future<Output = Result<Vec<Done>, StoreError>> + Send,
    {
        let (answer, outcome) = oneshot::channel();
        self.pending.lock().push((item, answer));
        let queue = self.clone();
        tokio::spawn(
            async move { queue.commit_queued(commit).await }.instrument(tracing::Span::current()),
        );
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(DbErr::Custom(
                "the batch was abandoned".to_owned(),
            )))
        })
    }

    /// Commits whatever is queued (up to a batch), and tells each caller.
    async fn commit_queued<Commit, Committing>(&self, commit: Commit)
    where
        Commit: FnOnce(Vec<Item>) -> Committing,
        Committing: Future<Output = Result<Vec<Done>, StoreError>>,
    {
        let _leader = self.leader.lock().await;
        let batch = self.take();
        if batch.is_empty() {
            // An earlier task took this caller's item along with its own.
            return;
        }
        let (items, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match commit(items).await {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(outcome));
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.for_another_caller()));
                }
            }
        }
    }

    fn take(&self) -> Vec<(Item, Answer<Done>)> {
        let mut pending = self.pending.lock();
        // A caller that went away holds nothing of what its write would make (a session's
        // refresh token, a rotation's successor): writing it would only cost time that waiting
        // callers need. (Token calls run to completion once started, so this is rare: a call
        // dropped before the edge detached it.)
        pending.retain(|(_, answer)| !answer.is_closed());
        let first = self.batch.min(pending.len());
        let rest = pending.split_off(first);
        std::mem::replace(&mut *pending, rest)
    }
}
