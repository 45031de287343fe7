//! Login throttling (SPEC §2): per username, and per end-user address when the caller forwards
//! one, counted in the database so that every instance sees the same counts.
use std::{sync::Arc, time::Duration};

use quick_cache::sync::Cache;

use super::{
    DomainError,
    clock::{SharedClock, ms},
    repository::{SharedRepository, ThrottleCount},
};

/// Failed attempts per username in a window before it locks.
pub const USERNAME_LIMIT: i32 = 5;
/// Failed attempts per end-user address in a window before it locks.
pub const ADDRESS_LIMIT: i32 = 100;
/// The counting window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(24 * 60 * 60);
/// A key unused for this long forgets its earlier lockouts.
pub const QUIET_MS: i64 = 24 * 60 * 60 * 1000;

/// An attempt that was let through: counted (pessimistically, before the password is
/// checked), to be taken back if it succeeds.
#[derive(Debug)]
pub struct Attempt {
    username_key: String,
    address_key: Option<String>,
    /// The window each key was charged in: a take-back applies only within it, so that it
    /// never takes a failure of a later window away.
    charged_in: Vec<(String, i64)>,
}

impl Attempt {
    /// An attempt for `username` (and the end user's `address`), nothing charged yet.
    fn new(username: &str, address: Option<&str>) -> Self {
        Self {
            username_key: format!("user:{username}"),
            address_key: address.map(|a| format!("addr:{a}")),
            charged_in: Vec::new(),
        }
    }

    /// The keys of the attempt, with their limits.
    fn keys(&self) -> Vec<(&str, i32)> {
        let mut keys = vec![(self.username_key.as_str(), USERNAME_LIMIT)];
        if let Some(address) = &self.address_key {
            keys.push((address.as_str(), ADDRESS_LIMIT));
        }
        keys
    }
}

/// Counts and locks login attempts.
#[derive(Clone, Debug)]
pub struct LoginThrottle {
    repo: SharedRepository,
    clock: SharedClock,
    /// Keys this instance saw locked, until when: refused without touching the database.
    /// Per key: until when the lock is remembered here, and until when it lasts.
    locked: Arc<Cache<String, (i64, i64)>>,
}

/// Locked keys remembered at most.
const LOCKED_KEYS_KEPT: usize = 10_000;
/// How long a lock is remembered before the database is asked again.
const LOCK_MEMORY: Duration = Duration::from_secs(30);

/// How long after its window started a key that went over its limit stays locked: to the end
/// of the window the first time (so that no window sees more failures than the limit), and
/// twice as long at each lockout after that, up to a day.
fn lock_span(lockouts: i32) -> Duration {
    let doublings = u32::try_from(lockouts.clamp(0, 16)).unwrap_or(0);
    WINDOW
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_LOCK)
}

impl LoginThrottle {
    pub fn new(repo: SharedRepository, clock: SharedClock) -> Self {
        Self {
            repo,
            clock,
            locked: Arc::new(Cache::new(LOCKED_KEYS_KEPT)),
        }
    }

    /// Counts an attempt for `username` (and `address`), or refuses it with the delay after
    /// which to retry. Existing and unknown usernames are treated alike.
    ///
    /// Both keys are checked before either is charged, so that an attempt refused for one key
    /// counts against neither; a key known to be locked is refused from memory, without a
    /// query or a write (SPEC §2).
    pub async fn begin(
        &self,
        username: &str,
        address: Option<&str>,
    ) -> Result<Attempt, DomainError> {
        let mut attempt = Attempt::new(username, address);
        let now = self.clock.now_ms();
        let keys = attempt.keys();
        self.refuse_known_locks(&keys, now)?;
        for (key, limit) in &keys {
            self.check(key, *limit, now).await?;
        }
        // Charged one key at a time, atomically: of any number of concurrent attempts, only
        // `limit` get through. One that goes over takes back what it charged.
        let mut charged = Vec::with_capacity(keys.len());
        for (key, limit) in &keys {
            let count = self.repo.count_attempt(key, now, ms(WINDOW)).await?;
            charged.push(((*key).to_owned(), count.window_started_at));
            let locked = count.locked_until.filter(|until| *until > now);
            if locked.is_some() || count.failures > *limit {
                let until = match locked {
                    Some(until) => {
                        // A locked key's counter is left alone: nothing to take back there.
                        charged.pop();
                        self.remember_locked(key, until, now);
                        until
                    }
                    None => self.lock(key, &count, now).await?,
                };
                for (key, window) in &charged {
                    self.repo.uncount_attempt(key, *window, now).await?;
                }
                return Err(slow_down(until - now));
            }
        }
        attempt.charged_in = charged;
        Ok(attempt)
    }

    /// Refuses an attempt for `username` (and `address`) at once when this instance knows one
    /// of its keys is locked: no query, no write, no place in the hashing queue. Attempts that
    /// pass still go through [`LoginThrottle::begin`].
    pub fn refuse_if_known_locked(
        &self,
        username: &str,
        address: Option<&str>,
    ) -> Result<(), DomainError> {
        let attempt = Attempt::new(username, address);
        self.refuse_known_locks(&attempt.keys(), self.clock.now_ms())
    }

    fn refuse_known_locks(&self, keys: &[(&str, i32)], now: i64) -> Result<(), DomainError> {
        for (key, _) in keys {
            if let Some((_, until)) = self
                .locked
                .get(*key)
                .filter(|(remembered, _)| *remembered > now)
            {
                return Err(slow_down(until - now));
            }
        }
        Ok(())
    }

    /// Refuses an attempt on `key` when it is locked, or locks it when it has had `limit`
    /// failures in its window; charges nothing.
    async fn check(&self, key: &str, limit: i32, now: i64) -> Result<(), DomainError> {
        let Some(count) = self.repo.read_counter(key).await? else {
            return Ok(());
        };
        if let Some(until) = count.locked_until.filter(|until| *until > now) {
            self.remember_locked(key, until, now);
            return Err(slow_down(until - now));
        }
        let window_over = count.window_started_at <= now - ms(WINDOW);
        if !window_over && count.failures >= limit {
            let until = self.lock(key, &count, now).await?;
            return Err(slow_down(until - now));
        }
        Ok(())
    }

    /// Locks `key`, which went over its limit, to the end of its window (longer at each
    /// lockout); returns until when.
    async fn lock(&self, key: &str, count: &ThrottleCount, now: i64) -> Result<i64, DomainError> {
        let until = count
            .window_started_at
            .saturating_add(ms(lock_span(count.lockouts)))
            .max(now + 1_000);
        self.repo.lock_key(key, now, until).await?;
        self.remember_locked(key, until, now);
        Ok(until)
    }

    /// Remembers a lock for a little while: long enough that a flood against a locked key
    /// costs no query, short enough that the database stays the judge (a lock taken back by a
    /// success, or removed by hand, is lifted here within [`LOCK_MEMORY`]).
    fn remember_locked(&self, key: &str, until: i64, now: i64) {
        let remembered = until.min(now.saturating_add(ms(LOCK_MEMORY)));
        self.locked.insert(key.to_owned(), (remembered, until));
    }

    /// The attempt got no verdict (for instance, no hashing capacity): it does not count.
    pub async fn release(&self, attempt: Attempt) -> Result<(), DomainError> {
        let now = self.clock.now_ms();
        for (key, window) in &attempt.charged_in {
            self.repo.uncount_attempt(key, *window, now).await?;
        }
        Ok(())
    }

    /// The attempt succeeded: the username's counter starts over; the address gives back the
    /// one attempt it was charged (others behind it may still be guessing).
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), DomainError> {
        self.repo.reset_key(&attempt.username_key).await?;
        self.locked.remove(&attempt.username_key);
        let now = self.clock.now_ms();
        for (key, window) in &attempt.charged_in {
            if Some(key) == attempt.address_key.as_ref() {
                self.repo.uncount_attempt(key, *window, now).await?;
            }
        }
        Ok(())
    }
}

fn slow_down(retry_after_ms: i64) -> DomainError {
    let millis = u64::try_from(retry_after_ms.max(1)).unwrap_or(1);
    // Whole seconds, rounded up: clients that retry at the advised time find the lock gone.
    DomainError::SlowDown {
        retry_after: Duration::from_secs(millis.div_ceil(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lock_lasts_the_window_and_each_further_one_doubles_up_to_a_day() {
        assert_eq!(lock_span(0), WINDOW);
        assert_eq!(lock_span(1), WINDOW * 2);
        assert_eq!(lock_span(3), WINDOW * 8);
        assert_eq!(lock_span(7), MAX_LOCK);
        assert_eq!(lock_span(1000), MAX_LOCK);
    }

    #[tokio::test]
    async fn a_take_back_after_the_window_moved_on_takes_nothing_from_the_new_window() {
        use crate::domain::{
            clock::ManualClock, memory_repository::MemoryRepository, repository::ThrottleRepository,
        };
        let repo = Arc::new(MemoryRepository::default());
        let clock = ManualClock::starting_at(1_000_000);
        let throttle = LoginThrottle::new(repo.clone(), Arc::new(clock.clone()));
        let slow = throttle
            .begin("ann@example.com", Some("192.0.2.1"))
            .await
            .expect("first attempt");
        // The window ends while the first attempt is out; a new one starts with another.
        clock.advance(WINDOW + Duration::from_secs(1));
        let _next = throttle
            .begin("bob@example.com", Some("192.0.2.1"))
            .await
            .expect("second attempt");
        throttle.release(slow).await.expect("release");
        let count = repo
            .read_counter("addr:192.0.2.1")
            .await
            .expect("read")
            .expect("a counter");
        assert_eq!(count.failures, 1, "the new window keeps its attempt");
    }
}
