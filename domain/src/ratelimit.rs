//! Token buckets for rate limits (our extension): per orchestrator (in each worker isolate) and
//! per account (in the account's object, so exact for that account): the account's own budget,
//! taken only by calls that proved they belong to it, and a separate one for its failed
//! unsigned attempts. Calls that prove nothing are counted per client address
//! ([`client_key`]) by Cloudflare's Rate Limiting binding.
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens a second; a call
//! takes one token or is refused with the seconds until one is back (`Retry-After`).

use std::net::{IpAddr, Ipv6Addr};

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

/// The rate limiter's key for a client address (`CF-Connecting-IP`): IPv6 clients by their /64
/// (one subscriber's network: a client can pick any address in it), others by the whole
/// address; an absent or unreadable header shares one key.
pub fn client_key(address: Option<&str>) -> String {
    match address.and_then(|a| a.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("ip:{net}/64")
            }
        },
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys() {
        assert_eq!(client_key(Some("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(client_key(Some(" 203.0.113.7 ")), "ip:203.0.113.7");
        assert_eq!(
            client_key(Some("2001:db8:1:2:3:4:5:6")),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            client_key(Some("2001:db8:1:2:ffff::1")),
            client_key(Some("2001:db8:1:2::9"))
        );
        assert_eq!(client_key(Some("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(client_key(Some("nonsense")), "ip:unknown");
        assert_eq!(client_key(None), "ip:unknown");
    }

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
