//! Binding an address another process may hold, again and again until it
//! binds.
//!
//! Every socket the proxy opens while it runs goes through
//! [`until_bound`]: the Service frontends ([`crate::listeners`]), the
//! cluster DNS ([`crate::dns`]) and the Ingress listeners
//! ([`crate::ingress`]). It binds at once; if that fails (another process
//! holds the port without `SO_REUSEPORT`), it tries again after 200 ms,
//! then twice as long each time up to 10 s ([`Backoff`]), until the
//! address binds or the caller's task is aborted.
//!
//! A streak of failures is logged once, at warn level, and handed once to
//! the caller's `report`, which records a [`FAILED_TO_LISTEN`] Warning
//! Event where the address belongs to an object; later attempts are
//! logged at debug level, and the bind that ends the streak at info level.

use std::net::SocketAddr;
use std::time::Duration;

/// The first wait before binding a refused address again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// The reason of the Event saying an object's address cannot be bound.
pub(crate) const FAILED_TO_LISTEN: &str = "FailedToListen";

/// The waits between attempts: from `first`, doubling, at most `max`.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first.min(max),
            max,
        }
    }
}

impl Default for Backoff {
    /// 200 ms, doubling up to 10 s: what the proxy's listeners wait.
    fn default() -> Backoff {
        Backoff::new(RETRY_FIRST, RETRY_MAX)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// The wait before the next attempt; never ends.
    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(wait)
    }
}

/// Binds `addr` with `attempt` now, and after each of `waits` while it
/// fails; returns what binds. The first failure is logged as not being
/// able to listen for `what` and handed to `report`.
pub(crate) async fn until_bound<T>(
    addr: SocketAddr,
    what: &str,
    mut waits: Backoff,
    mut attempt: impl FnMut(SocketAddr) -> std::io::Result<T>,
    report: impl FnOnce(&std::io::Error),
) -> T {
    let error = match attempt(addr) {
        Ok(bound) => return bound,
        Err(error) => error,
    };
    tracing::warn!(%error, %addr, "cannot listen for {what}; retrying with back-off");
    report(&error);
    loop {
        tokio::time::sleep(waits.next().unwrap_or(RETRY_MAX)).await;
        match attempt(addr) {
            Ok(bound) => {
                tracing::info!(%addr, "listening for {what} after retrying");
                return bound;
            }
            Err(error) => tracing::debug!(%error, %addr, "still cannot listen for {what}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = Backoff::default().take(9).collect();
        assert_eq!(
            waits,
            [
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                RETRY_MAX,
                RETRY_MAX,
                RETRY_MAX
            ]
        );
        assert_eq!(Backoff::new(ms(50), ms(20)).next(), Some(ms(20)), "never past the cap");
    }

    #[tokio::test]
    async fn a_streak_of_failures_is_reported_once_and_ends_in_the_bind() {
        let addr: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let mut attempts = 0;
        let mut reports = Vec::new();
        let bound = until_bound(
            addr,
            "a test",
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
            |at| {
                attempts += 1;
                if attempts < 4 {
                    Err(Error::new(ErrorKind::AddrInUse, format!("{at} held ({attempts})")))
                } else {
                    Ok(attempts)
                }
            },
            |error| reports.push(error.to_string()),
        )
        .await;
        assert_eq!(bound, 4, "tried until it bound");
        assert_eq!(reports, ["127.0.0.1:53 held (1)"], "the first failure only");

        let mut reported = false;
        let bound = until_bound(addr, "a test", Backoff::default(), Ok, |_| reported = true).await;
        assert_eq!((bound, reported), (addr, false), "a bind at once is no failure");
    }
}
