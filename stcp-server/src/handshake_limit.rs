//! `--handshake-rate-per-ip`: a token bucket per source address, per worker, answering whether
//! a hello may have its handshake computed now.
//!
//! Each worker owns one [`HandshakeLimiter`] (no locks, no sharing). Its table is allocated
//! once, [`TABLE_SETS`] sets of [`WAYS`] entries, and never grows: an address not in its set
//! replaces the set's least recently seen entry, so a flood from many addresses costs a fixed
//! amount of memory (it evicts, and an evicted address starts again with a full bucket).
//! IPv6 sources are keyed on their /64, the block one host usually holds. The clock is passed
//! in, so the behaviour is testable without sleeping.

use std::{
    hash::BuildHasher,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Number of sets in a worker's table.
pub const TABLE_SETS: usize = 1024;
/// Entries per set.
pub const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    key: u128,
    used: bool,
    tokens: f64,
    last: Instant,
}

/// Per-source token buckets: `rate` handshakes per second, bursts of up to `rate` (at least 1).
pub struct HandshakeLimiter {
    rate: f64,
    burst: f64,
    hasher: std::hash::RandomState,
    table: Box<[Entry]>,
}

impl HandshakeLimiter {
    /// A limiter allowing `rate_per_sec` handshakes per second per source (`rate_per_sec > 0`).
    pub fn new(rate_per_sec: u32, now: Instant) -> HandshakeLimiter {
        let rate = f64::from(rate_per_sec.max(1));
        let empty = Entry {
            key: 0,
            used: false,
            tokens: 0.0,
            last: now,
        };
        HandshakeLimiter {
            rate,
            burst: rate,
            hasher: std::hash::RandomState::new(),
            table: vec![empty; TABLE_SETS * WAYS].into_boxed_slice(),
        }
    }

    /// Whether a handshake from `ip` may be computed at `now` (and, if so, takes its token).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = key(ip);
        let set = (self.hasher.hash_one(key) as usize % TABLE_SETS) * WAYS;
        let entries = &mut self.table[set..set + WAYS];
        let i = match entries.iter().position(|e| e.used && e.key == key) {
            Some(i) => i,
            None => {
                // A free way, else the least recently seen one.
                let i = entries.iter().position(|e| !e.used).unwrap_or_else(|| {
                    (0..WAYS)
                        .min_by_key(|&i| entries[i].last)
                        .unwrap_or_default()
                });
                entries[i] = Entry {
                    key,
                    used: true,
                    tokens: self.burst,
                    last: now,
                };
                i
            }
        };
        let e = &mut entries[i];
        let elapsed = now.saturating_duration_since(e.last);
        e.tokens = (e.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        e.last = e.last.max(now);
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long a source that just spent its burst waits for its next token.
    pub fn refill_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }
}

/// IPv4 addresses whole (as IPv4-mapped IPv6), IPv6 by their /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(10, t0);
        for i in 0..10 {
            assert!(l.allow(v4(1), t0), "burst {i}");
        }
        assert!(!l.allow(v4(1), t0), "the 11th in the same instant");
        // Another source has its own bucket.
        assert!(l.allow(v4(2), t0));
        // One token back every 100 ms.
        assert_eq!(l.refill_interval(), Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.allow(v4(1), t1));
        assert!(!l.allow(v4(1), t1));
        // A long pause refills to the burst, no further.
        let t2 = t1 + Duration::from_secs(60);
        for i in 0..10 {
            assert!(l.allow(v4(1), t2), "refilled {i}");
        }
        assert!(!l.allow(v4(1), t2));
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(1, t0);
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.allow(IpAddr::V6(a), t0));
        assert!(!l.allow(IpAddr::V6(b), t0), "same /64, same bucket");
        assert!(l.allow(IpAddr::V6(other), t0));
        // An IPv4-mapped address is its IPv4 address.
        assert!(l.allow(v4(7), t0));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert!(!l.allow(mapped, t0));
    }

    /// Many sources cannot grow the table: it stays at its fixed size, and the sources a flood
    /// evicts start again with a full bucket rather than being refused.
    #[test]
    fn a_flood_of_sources_stays_within_the_table() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(1, t0);
        assert!(l.allow(v4(1), t0));
        assert!(!l.allow(v4(1), t0));
        for i in 0..(TABLE_SETS * WAYS * 4) as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            assert!(l.allow(ip, t0 + Duration::from_micros(u64::from(i) + 1)));
        }
        assert_eq!(l.table.len(), TABLE_SETS * WAYS);
        assert!(l.table.iter().all(|e| e.key != key(v4(1))), "evicted");
        assert!(
            l.allow(v4(1), t0),
            "an evicted source starts with a full bucket"
        );
    }
}
