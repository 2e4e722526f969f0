//! Token buckets for rate limits (our extension): per orchestrator (in each worker isolate) and
//! per account (in the account's object, so exact for that account).
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens a second; a call
//! takes one token or is refused with the seconds until one is back (`Retry-After`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Bucket {
    pub fn full(limit: Limit, now_ms: u64) -> Bucket {
        Bucket {
            tokens: limit.burst as f64,
            updated_ms: now_ms,
        }
    }

    /// Takes one token, or says how many seconds until one is available.
    pub fn take(&mut self, limit: Limit, now_ms: u64) -> Result<(), u64> {
        if limit.per_minute == 0 {
            return Ok(()); // 0 means unlimited
        }
        let rate = limit.per_minute as f64 / 60_000.0; // tokens per ms
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64;
        self.tokens = (self.tokens + elapsed * rate).min(limit.burst as f64);
        self.updated_ms = now_ms.max(self.updated_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - self.tokens) / rate;
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limit = Limit {
        per_minute: 60,
        burst: 3,
    };

    #[test]
    fn burst_then_refill() {
        let mut b = Bucket::full(L, 0);
        assert_eq!(b.take(L, 0), Ok(()));
        assert_eq!(b.take(L, 0), Ok(()));
        assert_eq!(b.take(L, 0), Ok(()));
        assert_eq!(b.take(L, 0), Err(1));
        assert_eq!(b.take(L, 999), Err(1));
        assert_eq!(b.take(L, 1000), Ok(()));
        // Never more than the burst, however long the pause.
        let mut b = Bucket::full(L, 0);
        for _ in 0..3 {
            b.take(L, 0).unwrap();
        }
        assert!(b.take(L, 3_600_000).is_ok());
        assert!(b.take(L, 3_600_000).is_ok());
        assert!(b.take(L, 3_600_000).is_ok());
        assert!(b.take(L, 3_600_000).is_err());
    }

    #[test]
    fn slow_rates_say_how_long_to_wait() {
        let l = Limit {
            per_minute: 1,
            burst: 1,
        };
        let mut b = Bucket::full(l, 0);
        b.take(l, 0).unwrap();
        assert_eq!(b.take(l, 0), Err(60));
        assert_eq!(b.take(l, 30_000), Err(30));
    }

    #[test]
    fn zero_is_unlimited() {
        let l = Limit {
            per_minute: 0,
            burst: 0,
        };
        let mut b = Bucket::full(l, 0);
        for _ in 0..1000 {
            assert!(b.take(l, 0).is_ok());
        }
    }
}
