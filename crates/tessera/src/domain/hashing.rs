//! argon2id hashing of secrets, off the async executor and bounded in flight.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::DomainError;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's recommendation: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn params(self) -> Result<Params, argon2::Error> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }
}

/// Runs argon2id on the blocking pool, at most `permits` hashes at once. A caller that cannot
/// get a permit within `max_wait` is told to slow down instead of queueing without bound.
#[derive(Clone, Debug)]
pub struct HashingPool {
    permits: Arc<Semaphore>,
    capacity: usize,
    workers: Workers,
    params: Params,
    max_wait: Duration,
    completed: Arc<AtomicU64>,
    dummy: Arc<tokio::sync::OnceCell<String>>,
}

impl HashingPool {
    /// A pool with `permits` concurrent hashes of the given cost.
    pub fn new(cost: HashCost, permits: usize, max_wait: Duration) -> Result<Self, argon2::Error> {
        let capacity = permits.max(1);
        Ok(Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            workers: Workers::start(capacity),
            params: cost.params()?,
            max_wait,
            completed: Arc::new(AtomicU64::new(0)),
            dummy: Arc::default(),
        })
    }

    /// How many hashes run at once, at most.
    /// Hashing places taken now (hashes running or about to).
    pub fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A pool sized to the machine: one hash per core.
    pub fn for_this_machine(cost: HashCost) -> Result<Self, argon2::Error> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cost, cores, Duration::from_millis(200))
    }

    /// The PHC string of an argon2id hash of `secret` with a fresh salt.
    #[tracing::instrument(level = "debug", name = "argon2.hash", skip_all)]
    pub async fn hash(&self, secret: SecretString) -> Result<String, DomainError> {
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2id(params)
                .hash_password(secret.expose_secret().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| DomainError::Internal(anyhow::anyhow!("argon2 hash failed: {e}")))
        })
        .await
    }

    /// Whether `secret` matches the PHC string `phc`. A malformed PHC string never matches.
    #[tracing::instrument(level = "debug", name = "argon2.verify", skip_all)]
    pub async fn verify(&self, secret: SecretString, phc: String) -> Result<bool, DomainError> {
        let permit = self.acquire().await?;
        self.execute(verify_job(self.params.clone(), secret, phc), Some(permit))
            .await
    }

    /// Takes a place in the pool now (or says slow down), for a caller that must know it will
    /// be able to hash before it does anything else, such as counting a login attempt.
    pub async fn reserve(&self) -> Result<Reservation, DomainError> {
        Ok(Reservation {
            _permit: self.acquire().await?,
        })
    }

    /// [`HashingPool::verify`] in a place taken by [`HashingPool::reserve`].
    #[tracing::instrument(level = "debug", name = "argon2.verify", skip_all)]
    pub async fn verify_reserved(
        &self,
        _reservation: &Reservation,
        secret: SecretString,
        phc: String,
    ) -> Result<bool, DomainError> {
        self.execute(verify_job(self.params.clone(), secret, phc), None)
            .await
    }

    /// A hash of a random secret at the configured cost: unknown usernames are verified
    /// against it, so that they cost what a wrong password costs.
    pub async fn dummy_hash(&self) -> Result<String, DomainError> {
        self.dummy
            .get_or_try_init(|| self.hash(SecretString::from(super::random::new_secret())))
            .await
            .cloned()
    }

    /// Whether a stored hash is not at the configured cost (or not argon2id at all), so that it
    /// should be replaced after the next successful verification.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        if hash.algorithm != argon2::ARGON2ID_IDENT {
            return true;
        }
        let Ok(stored) = Params::try_from(&hash) else {
            return true;
        };
        // Weaker costs less than a wrong password for an unknown user, stronger costs more:
        // either would tell the account apart, so both are brought to the configured cost.
        stored.m_cost() != self.params.m_cost()
            || stored.t_cost() != self.params.t_cost()
            || stored.p_cost() != self.params.p_cost()
    }

    /// Takes every permit until the returned guard drops: the pool is then full, as under a
    /// login flood. A test hook: only in builds with the `test-hooks` feature (tessera-testkit
    /// turns it on), never in the product.
    #[cfg(feature = "test-hooks")]
    pub async fn occupy_all(&self) -> Result<tokio::sync::OwnedSemaphorePermit, DomainError> {
        let all = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(all)
            .await
            .map_err(|e| DomainError::Internal(e.into()))
    }

    /// How many hashes and verifications this pool has run: lets tests see whether a path
    /// paid for argon2. A test hook, like [`HashingPool::occupy_all`].
    #[cfg(feature = "test-hooks")]
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let permit = self.acquire().await?;
        self.execute(job, Some(permit)).await
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, DomainError> {
        tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| DomainError::SlowDown {
                retry_after: Duration::from_secs(1),
            })?
            .map_err(|e| DomainError::Internal(e.into()))
    }

    /// Runs `job` on a hashing thread; `permit` (if any) is released when it is done.
    async fn execute<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<T, DomainError> {
        let completed = self.completed.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        self.workers.submit(Box::new(move || {
            let outcome = job();
            completed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let _ = done.send(outcome);
        }))?;
        result
            .await
            .map_err(|_| DomainError::Internal(anyhow::anyhow!("a hashing worker stopped")))?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run argon2, one per permit. A hash holds its memory cost
/// (19 MiB by default) while it runs, and the allocator keeps it for the thread that used it:
/// on a fixed set of threads that memory is reused, where the executor's blocking pool
/// (hundreds of threads over time) would let the process grow by that much per thread.
#[derive(Clone, Debug)]
struct Workers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    fn start(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job.
                        let job = queue.lock().recv();
                        match job {
                            Ok(job) => job(),
                            // Every sender is gone: the pool was dropped.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a hashing thread");
            }
        }
        Self { jobs }
    }

    fn submit(&self, job: Job) -> Result<(), DomainError> {
        self.jobs
            .send(job)
            .map_err(|_| DomainError::Internal(anyhow::anyhow!("no hashing worker is running")))
    }
}

/// A place in the hashing pool, held until dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

fn verify_job(
    params: Params,
    secret: SecretString,
    phc: String,
) -> impl FnOnce() -> Result<bool, DomainError> + Send + 'static {
    move || {
        let Ok(hash) = PasswordHash::new(&phc) else {
            return Ok(false);
        };
        Ok(argon2id(params)
            .verify_password(secret.expose_secret().as_bytes(), &hash)
            .is_ok())
    }
}

fn argon2id(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> HashingPool {
        HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(5)).expect("valid params")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_secret_and_nothing_else() {
        let pool = pool();
        let phc = pool.hash(SecretString::from("right")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            pool.verify(SecretString::from("right"), phc.clone())
                .await
                .expect("verify")
        );
        assert!(
            !pool
                .verify(SecretString::from("wrong"), phc)
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn hashes_at_another_cost_need_a_rehash_and_equal_ones_do_not() {
        let weak = HashingPool::new(
            HashCost {
                memory_kib: 8 * 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
            Duration::from_secs(5),
        )
        .expect("pool");
        let strong = pool();
        let weak_hash = weak.hash(SecretString::from("pw")).await.expect("hash");
        let strong_hash = strong.hash(SecretString::from("pw")).await.expect("hash");
        assert!(strong.needs_rehash(&weak_hash));
        assert!(!strong.needs_rehash(&strong_hash));
        // Stronger than configured: re-hashed too, or its slower check would tell it apart.
        assert!(weak.needs_rehash(&strong_hash));
        assert!(
            strong.needs_rehash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
        );
    }

    #[tokio::test]
    async fn the_dummy_hash_is_made_once_and_matches_nothing_guessable() {
        let pool = pool();
        let first = pool.dummy_hash().await.expect("dummy");
        assert_eq!(pool.dummy_hash().await.expect("dummy"), first);
        assert!(
            !pool
                .verify(SecretString::from(""), first)
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn a_malformed_hash_never_matches() {
        assert!(
            !pool()
                .verify(SecretString::from("x"), "nonsense".into())
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn a_full_pool_says_slow_down() {
        let pool = HashingPool::new(HashCost::OWASP, 1, Duration::from_millis(10)).expect("pool");
        let _held = pool.permits.clone().acquire_owned().await.expect("permit");
        let err = pool
            .hash(SecretString::from("x"))
            .await
            .expect_err("must be refused");
        assert!(matches!(err, DomainError::SlowDown { .. }));
    }
}
