//! Logging what a flood could repeat without bound (refused subscriptions and cluster
//! announcements, dropped or unsendable cache sync datagrams): the first occurrence and
//! then one in every [`EVERY`], each line carrying the count so far.

use std::sync::atomic::{AtomicU64, Ordering};

/// One occurrence in this many is logged (and the first).
pub const EVERY: u64 = 1000;

/// Whether the occurrence that found `before` earlier ones is one to log.
pub fn is_logged(before: u64) -> bool {
    before % EVERY == 0
}

/// The occurrences of one kind of event, logged sparsely.
#[derive(Debug, Default)]
pub struct SampledLog(AtomicU64);

impl SampledLog {
    /// No occurrence yet.
    pub const fn new() -> Self {
        SampledLog(AtomicU64::new(0))
    }

    /// Counts one occurrence; for the first and then every [`EVERY`]th, calls `write`
    /// with the count so far.
    pub fn count(&self, write: impl FnOnce(u64)) {
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        if is_logged(before) {
            write(before + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_and_every_thousandth_are_written() {
        let log = SampledLog::new();
        let mut written = Vec::new();
        for _ in 0..2001 {
            log.count(|n| written.push(n));
        }
        assert_eq!(written, [1, 1001, 2001]);
    }
}
