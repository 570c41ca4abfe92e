//! Retrying an async operation with exponential backoff and jitter.
//!
//! The only place facture decides *how* to wait between attempts: the mailer uses it for
//! SMTP sends and the engine for its own steps. The delays come from the `backoff` crate
//! (exponential, multiplier 2, ±30 % jitter, capped at [`RetryPolicy::max`]); the loop
//! here counts attempts, because facture's limits are in attempts, not elapsed time.
//!
//! An error says whether another attempt could help through [`Transience`]; wrap a value in
//! [`Attempted`] to decide case by case.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use facture_core::mail::retry::{retry, Attempted, RetryPolicy};
//! # async fn demo() {
//! let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(5), 4);
//! let done = retry(&policy, || async {
//!     Err::<(), _>(Attempted::Transient("connection refused"))
//! })
//! .await;
//! assert_eq!(done.attempts, 4);
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoffBuilder;

use crate::config::{EngineSettings, MailSettings};
use crate::db::DbError;

/// How many times to try, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure (later waits double, with jitter).
    pub initial: Duration,
    /// No wait is longer than this.
    pub max: Duration,
    /// Attempts in total, the first one included (0 is treated as 1).
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Jitter applied around each delay: the wait is `d × [0.7, 1.3]`, then capped.
    pub const JITTER: f64 = 0.3;

    pub fn new(initial: Duration, max: Duration, max_attempts: u32) -> Self {
        RetryPolicy {
            initial,
            max,
            max_attempts,
        }
    }

    /// One attempt, no waiting.
    pub fn once() -> Self {
        RetryPolicy::new(Duration::ZERO, Duration::ZERO, 1)
    }

    /// `mail.retry_initial_ms`, `mail.retry_max_ms`, `mail.max_attempts`.
    pub fn from_mail(settings: &MailSettings) -> Self {
        RetryPolicy::new(
            Duration::from_millis(settings.retry_initial_ms),
            Duration::from_millis(settings.retry_max_ms),
            settings.max_attempts,
        )
    }

    /// `engine.retry_initial_ms`, `engine.retry_max_ms`, `engine.max_attempts`.
    pub fn from_engine(settings: &EngineSettings) -> Self {
        RetryPolicy::new(
            Duration::from_millis(settings.retry_initial_ms),
            Duration::from_millis(settings.retry_max_ms),
            settings.max_attempts,
        )
    }

    fn attempts_allowed(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The successive waits between attempts (jittered, so two calls differ).
    pub fn delays(&self) -> Delays {
        let max = self.max.max(self.initial);
        let inner = ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_max_interval(max)
            .with_multiplier(2.0)
            .with_randomization_factor(Self::JITTER)
            .with_max_elapsed_time(None)
            .build();
        Delays { inner, max }
    }

    /// The wait before attempt number `attempt + 1` once `attempt` attempts (1-based)
    /// have failed, without jitter: `initial × 2^(attempt-1)`, capped at `max`. For
    /// callers that schedule the next attempt themselves (e.g. a persisted
    /// `next_attempt_at`) instead of sleeping in [`retry`].
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        let factor = 1u32 << shift;
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max.max(self.initial))
    }
}

/// Jittered exponential delays; see [`RetryPolicy::delays`].
pub struct Delays {
    inner: backoff::ExponentialBackoff,
    max: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // With no elapsed-time limit the backoff never stops; cap the jitter's overshoot.
        Some(self.inner.next_backoff().unwrap_or(self.max).min(self.max))
    }
}

/// Whether an error may go away if the operation is tried again.
pub trait Transience {
    fn is_transient(&self) -> bool;
}

/// An error classified by the operation itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted<E> {
    /// Worth another attempt (connection refused, timeout, SMTP 4xx, busy database).
    Transient(E),
    /// Retrying cannot help (SMTP 5xx, invalid address, bad data).
    Permanent(E),
}

impl<E> Attempted<E> {
    pub fn into_inner(self) -> E {
        match self {
            Attempted::Transient(e) | Attempted::Permanent(e) => e,
        }
    }

    pub fn inner(&self) -> &E {
        match self {
            Attempted::Transient(e) | Attempted::Permanent(e) => e,
        }
    }

    /// Classifies `error` with `is_transient`.
    pub fn classify(error: E, is_transient: impl FnOnce(&E) -> bool) -> Self {
        if is_transient(&error) {
            Attempted::Transient(error)
        } else {
            Attempted::Permanent(error)
        }
    }
}

impl<E> Transience for Attempted<E> {
    fn is_transient(&self) -> bool {
        matches!(self, Attempted::Transient(_))
    }
}

impl<E: std::fmt::Display> std::fmt::Display for Attempted<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner().fmt(f)
    }
}

impl Transience for DbError {
    fn is_transient(&self) -> bool {
        DbError::is_transient(self)
    }
}

/// Why [`retry`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// The last error was permanent: no further attempt was made.
    Permanent(E),
    /// Every allowed attempt failed transiently; this is the last error.
    Exhausted(E),
}

impl<E> Failure<E> {
    pub fn error(&self) -> &E {
        match self {
            Failure::Permanent(e) | Failure::Exhausted(e) => e,
        }
    }

    pub fn into_error(self) -> E {
        match self {
            Failure::Permanent(e) | Failure::Exhausted(e) => e,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent(_))
    }
}

/// What [`retry`] ended with, and how many attempts it took (always at least 1).
#[derive(Debug)]
pub struct Retried<T, E> {
    pub attempts: u32,
    pub result: Result<T, Failure<E>>,
}

impl<T, E> Retried<T, E> {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The result with the failure reason dropped.
    pub fn into_result(self) -> Result<T, E> {
        self.result.map_err(Failure::into_error)
    }
}

/// Runs `op` until it succeeds, fails permanently, or `policy.max_attempts` attempts have
/// been made, sleeping a jittered exponential delay between attempts.
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, op: F) -> Retried<T, E>
where
    E: Transience,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_notify(policy, op, |_, _, _| {}).await
}

/// [`retry`], calling `notify(&error, attempt, next_delay)` after each transient failure
/// that will be retried (`attempt` is 1-based).
pub async fn retry_notify<T, E, F, Fut, N>(
    policy: &RetryPolicy,
    mut op: F,
    mut notify: N,
) -> Retried<T, E>
where
    E: Transience,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    N: FnMut(&E, u32, Duration),
{
    let allowed = policy.attempts_allowed();
    let mut delays = policy.delays();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match op().await {
            Ok(value) => {
                return Retried {
                    attempts,
                    result: Ok(value),
                }
            }
            Err(error) if !error.is_transient() => {
                return Retried {
                    attempts,
                    result: Err(Failure::Permanent(error)),
                }
            }
            Err(error) if attempts >= allowed => {
                return Retried {
                    attempts,
                    result: Err(Failure::Exhausted(error)),
                }
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(policy.max);
                notify(&error, attempts, delay);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy::new(
            Duration::from_millis(1),
            Duration::from_millis(4),
            max_attempts,
        )
    }

    #[tokio::test]
    async fn succeeds_after_transient_failures() {
        let calls = Cell::new(0);
        let done = retry(&fast(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(Attempted::Transient(n))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(done.attempts, 3);
        assert_eq!(done.result, Ok(3));
    }

    #[tokio::test]
    async fn permanent_errors_stop_at_once() {
        let done: Retried<(), _> =
            retry(&fast(5), || async { Err(Attempted::Permanent("550")) }).await;
        assert_eq!(done.attempts, 1);
        assert_eq!(
            done.result,
            Err(Failure::Permanent(Attempted::Permanent("550")))
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let calls = Cell::new(0u32);
        let mut notified = Vec::new();
        let done: Retried<(), _> = retry_notify(
            &fast(4),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(Attempted::Transient(n)) }
            },
            |_, attempt, _| notified.push(attempt),
        )
        .await;
        assert_eq!(done.attempts, 4);
        assert_eq!(
            done.result,
            Err(Failure::Exhausted(Attempted::Transient(4)))
        );
        assert_eq!(notified, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn zero_attempts_means_one() {
        let done: Retried<(), _> =
            retry(&fast(0), || async { Err(Attempted::Transient(())) }).await;
        assert_eq!(done.attempts, 1);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_millis(1000), 10);
        let delays: Vec<_> = policy.delays().take(10).collect();
        for d in &delays {
            assert!(*d >= Duration::from_millis(70), "{d:?}");
            assert!(*d <= Duration::from_millis(1000), "{d:?}");
        }
        assert!(delays[9] >= Duration::from_millis(700), "{delays:?}");
        assert_eq!(policy.nominal_delay(1), Duration::from_millis(100));
        assert_eq!(policy.nominal_delay(3), Duration::from_millis(400));
        assert_eq!(policy.nominal_delay(40), Duration::from_millis(1000));
    }
}
