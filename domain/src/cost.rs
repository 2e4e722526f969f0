//! What the flows cost on Cloudflare's Workers Paid plan, and where the one shared write path
//! (the D1 audit trail) stops scaling (issue 17 part 4).
//!
//! The worker counts its own billable work when `COST_METER` is on ([`Meter`]); the cost
//! benchmark (`test/src/bin/cost.rs`) turns the counts of each flow into [`Counts`] per flow
//! and prices them here. Pure arithmetic, so the figures in BENCHMARKS.md can be checked.

use serde::{Deserialize, Serialize};

/// The date of the price list below (Cloudflare's pricing pages, as last updated).
pub const PRICES_AS_OF: &str = "2026-04";

/// Workers Paid prices in USD: a monthly base with included amounts, then a price per million.
#[derive(Clone, Copy, Debug)]
pub struct Prices {
    pub base_per_month: f64,
    pub requests_included: f64,
    pub requests_per_m: f64,
    pub cpu_ms_included: f64,
    pub cpu_ms_per_m: f64,
    pub do_requests_included: f64,
    pub do_requests_per_m: f64,
    pub do_gb_s_included: f64,
    pub do_gb_s_per_m: f64,
    /// Memory every active object is billed for, whatever it uses.
    pub do_memory_gb: f64,
    pub do_rows_read_included: f64,
    pub do_rows_read_per_m: f64,
    pub do_rows_written_included: f64,
    pub do_rows_written_per_m: f64,
    pub d1_rows_read_included: f64,
    pub d1_rows_read_per_m: f64,
    pub d1_rows_written_included: f64,
    pub d1_rows_written_per_m: f64,
}

/// Workers Paid, as of [`PRICES_AS_OF`].
pub const WORKERS_PAID: Prices = Prices {
    base_per_month: 5.0,
    requests_included: 10e6,
    requests_per_m: 0.30,
    cpu_ms_included: 30e6,
    cpu_ms_per_m: 0.02,
    do_requests_included: 1e6,
    do_requests_per_m: 0.15,
    do_gb_s_included: 400_000.0,
    do_gb_s_per_m: 12.50,
    do_memory_gb: 0.128,
    do_rows_read_included: 25e9,
    do_rows_read_per_m: 0.001,
    do_rows_written_included: 50e6,
    do_rows_written_per_m: 1.00,
    d1_rows_read_included: 25e9,
    d1_rows_read_per_m: 0.001,
    d1_rows_written_included: 50e6,
    d1_rows_written_per_m: 1.00,
};

/// Running totals of billable work, as the worker counts them in one isolate (integers, so a
/// delta of two snapshots is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    /// Worker fetch invocations (the orchestrator's calls, Stripe's webhooks).
    pub invocations: u64,
    /// Durable Object requests: each fetch of an object and each alarm it runs.
    pub do_requests: u64,
    /// Wall time the objects spent in those requests, as the object's clock saw it (ms).
    pub do_active_ms: u64,
    pub do_rows_read: u64,
    pub do_rows_written: u64,
    /// D1 statements (a batch of n statements counts n) and round trips (a batch counts 1).
    pub d1_queries: u64,
    pub d1_round_trips: u64,
    pub d1_rows_read: u64,
    pub d1_rows_written: u64,
    /// Outbound HTTP calls (Stripe, registrars, operator backends).
    pub subrequests: u64,
    /// The largest database size D1 reported after a statement (bytes): a level, not a count.
    #[serde(default)]
    pub d1_bytes: u64,
}

impl Meter {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Meter) -> Meter {
        Meter {
            invocations: self.invocations.saturating_sub(before.invocations),
            do_requests: self.do_requests.saturating_sub(before.do_requests),
            do_active_ms: self.do_active_ms.saturating_sub(before.do_active_ms),
            do_rows_read: self.do_rows_read.saturating_sub(before.do_rows_read),
            do_rows_written: self.do_rows_written.saturating_sub(before.do_rows_written),
            d1_queries: self.d1_queries.saturating_sub(before.d1_queries),
            d1_round_trips: self.d1_round_trips.saturating_sub(before.d1_round_trips),
            d1_rows_read: self.d1_rows_read.saturating_sub(before.d1_rows_read),
            d1_rows_written: self.d1_rows_written.saturating_sub(before.d1_rows_written),
            subrequests: self.subrequests.saturating_sub(before.subrequests),
            d1_bytes: self.d1_bytes.saturating_sub(before.d1_bytes),
        }
    }

    /// The worker's log line of these totals, `{"cost_meter":{...},"isolate":n}`; written by
    /// hand, as serde in the worker would add its code for this one development line.
    pub fn log_line(&self, isolate: u64) -> String {
        format!(
            "{{\"cost_meter\":{{\"invocations\":{},\"do_requests\":{},\"do_active_ms\":{},\"do_rows_read\":{},\"do_rows_written\":{},\"d1_queries\":{},\"d1_round_trips\":{},\"d1_rows_read\":{},\"d1_rows_written\":{},\"subrequests\":{},\"d1_bytes\":{}}},\"isolate\":{isolate}}}",
            self.invocations,
            self.do_requests,
            self.do_active_ms,
            self.do_rows_read,
            self.do_rows_written,
            self.d1_queries,
            self.d1_round_trips,
            self.d1_rows_read,
            self.d1_rows_written,
            self.subrequests,
            self.d1_bytes
        )
    }

    /// The sum of two isolates' totals (of two deltas: their growth added up, except the
    /// size, the larger of the two).
    pub fn plus(&self, other: &Meter) -> Meter {
        Meter {
            invocations: self.invocations + other.invocations,
            do_requests: self.do_requests + other.do_requests,
            do_active_ms: self.do_active_ms + other.do_active_ms,
            do_rows_read: self.do_rows_read + other.do_rows_read,
            do_rows_written: self.do_rows_written + other.do_rows_written,
            d1_queries: self.d1_queries + other.d1_queries,
            d1_round_trips: self.d1_round_trips + other.d1_round_trips,
            d1_rows_read: self.d1_rows_read + other.d1_rows_read,
            d1_rows_written: self.d1_rows_written + other.d1_rows_written,
            subrequests: self.subrequests + other.subrequests,
            d1_bytes: self.d1_bytes.max(other.d1_bytes),
        }
    }
}

/// One flow's work, averaged over the runs measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub invocations: f64,
    pub do_requests: f64,
    /// Seconds the objects are active (billed duration, before the memory factor).
    pub do_active_s: f64,
    pub do_rows_read: f64,
    pub do_rows_written: f64,
    pub d1_queries: f64,
    pub d1_round_trips: f64,
    pub d1_rows_read: f64,
    pub d1_rows_written: f64,
    pub subrequests: f64,
    pub cpu_ms: f64,
}

impl Counts {
    /// The average flow of `runs` runs whose meter totalled `m`, with `cpu_ms` of CPU in all
    /// and `outbound_wait_s` of assumed production latency per outbound call (the objects
    /// wait on Stripe and registrars while active, and local stand-ins answer in a millisecond).
    pub fn average(m: &Meter, runs: u32, cpu_ms: f64, outbound_wait_s: f64) -> Counts {
        let n = f64::from(runs.max(1));
        let per = |v: u64| v as f64 / n;
        Counts {
            invocations: per(m.invocations),
            do_requests: per(m.do_requests),
            do_active_s: per(m.do_active_ms) / 1000.0 + per(m.subrequests) * outbound_wait_s,
            do_rows_read: per(m.do_rows_read),
            do_rows_written: per(m.do_rows_written),
            d1_queries: per(m.d1_queries),
            d1_round_trips: per(m.d1_round_trips),
            d1_rows_read: per(m.d1_rows_read),
            d1_rows_written: per(m.d1_rows_written),
            subrequests: per(m.subrequests),
            cpu_ms: cpu_ms / n,
        }
    }
}

/// A price in USD, item by item.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bill {
    pub requests: f64,
    pub cpu: f64,
    pub do_requests: f64,
    pub do_duration: f64,
    pub do_rows: f64,
    pub d1_rows: f64,
}

impl Bill {
    pub fn total(&self) -> f64 {
        self.requests + self.cpu + self.do_requests + self.do_duration + self.do_rows + self.d1_rows
    }
}

/// What `flows` more of this flow add to a bill already past every included amount.
pub fn marginal(c: &Counts, flows: f64, p: &Prices) -> Bill {
    let m = flows / 1e6;
    Bill {
        requests: c.invocations * m * p.requests_per_m,
        cpu: c.cpu_ms * m * p.cpu_ms_per_m,
        do_requests: c.do_requests * m * p.do_requests_per_m,
        do_duration: c.do_active_s * p.do_memory_gb * m * p.do_gb_s_per_m,
        do_rows: c.do_rows_read * m * p.do_rows_read_per_m
            + c.do_rows_written * m * p.do_rows_written_per_m,
        d1_rows: c.d1_rows_read * m * p.d1_rows_read_per_m
            + c.d1_rows_written * m * p.d1_rows_written_per_m,
    }
}

/// A month of `flows` of this flow and nothing else: the included amounts first (the base
/// price is not in the bill; add [`Prices::base_per_month`]).
pub fn month(c: &Counts, flows: f64, p: &Prices) -> Bill {
    let over = |used: f64, included: f64, per_m: f64| (used - included).max(0.0) / 1e6 * per_m;
    Bill {
        requests: over(c.invocations * flows, p.requests_included, p.requests_per_m),
        cpu: over(c.cpu_ms * flows, p.cpu_ms_included, p.cpu_ms_per_m),
        do_requests: over(
            c.do_requests * flows,
            p.do_requests_included,
            p.do_requests_per_m,
        ),
        do_duration: over(
            c.do_active_s * p.do_memory_gb * flows,
            p.do_gb_s_included,
            p.do_gb_s_per_m,
        ),
        do_rows: over(
            c.do_rows_read * flows,
            p.do_rows_read_included,
            p.do_rows_read_per_m,
        ) + over(
            c.do_rows_written * flows,
            p.do_rows_written_included,
            p.do_rows_written_per_m,
        ),
        d1_rows: over(
            c.d1_rows_read * flows,
            p.d1_rows_read_included,
            p.d1_rows_read_per_m,
        ) + over(
            c.d1_rows_written * flows,
            p.d1_rows_written_included,
            p.d1_rows_written_per_m,
        ),
    }
}

/// D1's documented limits per database: single-threaded, so about 1,000 queries a second at
/// 1 ms a query, and 10 GB.
#[derive(Clone, Copy, Debug)]
pub struct D1Limits {
    pub queries_per_s: f64,
    pub max_bytes: f64,
}

pub const D1: D1Limits = D1Limits {
    queries_per_s: 1000.0,
    max_bytes: 10e9,
};

/// The D1 load of a steady `per_s` flows a second spread evenly over `shards` databases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct D1Load {
    /// Statements a second on each database.
    pub queries_per_s: f64,
    pub round_trips_per_s: f64,
    pub rows_written_per_s: f64,
    /// The share of one database's query budget used (above 1: it does not fit).
    pub utilisation: f64,
    /// The most flows a second the databases together sustain (the ceiling).
    pub ceiling_per_s: f64,
    /// How many flows fill the databases together to their size limit (`bytes_per_flow` each).
    pub flows_to_full: f64,
}

pub fn d1_load(c: &Counts, per_s: f64, shards: u32, bytes_per_flow: f64, l: &D1Limits) -> D1Load {
    let n = f64::from(shards.max(1));
    let queries_per_s = c.d1_queries * per_s / n;
    let per_flow = |total: f64, each: f64| {
        if each > 0.0 {
            total / each
        } else {
            f64::INFINITY
        }
    };
    D1Load {
        queries_per_s,
        round_trips_per_s: c.d1_round_trips * per_s / n,
        rows_written_per_s: c.d1_rows_written * per_s / n,
        utilisation: queries_per_s / l.queries_per_s,
        ceiling_per_s: per_flow(n * l.queries_per_s, c.d1_queries),
        flows_to_full: per_flow(n * l.max_bytes, bytes_per_flow),
    }
}

/// The fewest databases that keep each one at most `headroom` (e.g. 0.5) of its query budget
/// at `per_s` flows a second.
pub fn shards_needed(c: &Counts, per_s: f64, headroom: f64, l: &D1Limits) -> u32 {
    let budget = l.queries_per_s * headroom.clamp(0.01, 1.0);
    ((c.d1_queries * per_s / budget).ceil() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signup() -> Counts {
        Counts {
            invocations: 2.0,
            do_requests: 5.0,
            do_active_s: 0.01,
            do_rows_read: 20.0,
            do_rows_written: 30.0,
            d1_queries: 8.0,
            d1_round_trips: 2.0,
            d1_rows_read: 0.0,
            d1_rows_written: 16.0,
            subrequests: 0.0,
            cpu_ms: 4.0,
        }
    }

    #[test]
    fn a_million_flows_cost_each_item_at_its_list_price() {
        let b = marginal(&signup(), 1e6, &WORKERS_PAID);
        assert!((b.requests - 0.60).abs() < 1e-9);
        assert!((b.cpu - 0.08).abs() < 1e-9);
        assert!((b.do_requests - 0.75).abs() < 1e-9);
        // 0.01 s x 0.128 GB x 1M = 1,280 GB-s at $12.50 a million.
        assert!((b.do_duration - 0.016).abs() < 1e-9);
        assert!((b.do_rows - (20.0 * 0.001 + 30.0)).abs() < 1e-9);
        assert!((b.d1_rows - 16.0).abs() < 1e-9);
        assert!((b.total() - (0.60 + 0.08 + 0.75 + 0.016 + 30.02 + 16.0)).abs() < 1e-9);
    }

    #[test]
    fn a_month_takes_the_included_amounts_first() {
        let b = month(&signup(), 1e6, &WORKERS_PAID);
        // 2M requests, 4M CPU-ms, 30M DO rows and 16M D1 rows written fit in what is included.
        assert_eq!(b.requests, 0.0);
        assert_eq!(b.cpu, 0.0);
        assert_eq!(b.do_rows, 0.0);
        assert_eq!(b.d1_rows, 0.0);
        // 5M object requests: 4M over at $0.15.
        assert!((b.do_requests - 0.60).abs() < 1e-9);
    }

    #[test]
    fn the_meter_subtracts_and_averages() {
        let before = Meter {
            invocations: 3,
            d1_queries: 10,
            ..Meter::default()
        };
        let after = Meter {
            invocations: 7,
            d1_queries: 26,
            subrequests: 4,
            do_active_ms: 40,
            ..Meter::default()
        };
        let d = after.since(&before);
        assert_eq!(d.invocations, 4);
        assert_eq!(d.plus(&d).d1_queries, 32);
        let c = Counts::average(&d, 2, 10.0, 0.25);
        assert_eq!(c.invocations, 2.0);
        assert_eq!(c.d1_queries, 8.0);
        assert_eq!(c.cpu_ms, 5.0);
        // 20 ms measured plus two outbound calls of 250 ms each.
        assert!((c.do_active_s - 0.52).abs() < 1e-9);
    }

    #[test]
    fn the_log_line_reads_back_as_the_meter() {
        let m = Meter {
            invocations: 1,
            do_requests: 2,
            do_active_ms: 3,
            do_rows_read: 4,
            do_rows_written: 5,
            d1_queries: 6,
            d1_round_trips: 7,
            d1_rows_read: 8,
            d1_rows_written: 9,
            subrequests: 10,
            d1_bytes: 11,
        };
        let v: serde_json::Value = serde_json::from_str(&m.log_line(42)).unwrap();
        assert_eq!(v["isolate"], 42);
        let back: Meter = serde_json::from_value(v["cost_meter"].clone()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_ceiling_divides_by_the_shards() {
        let one = d1_load(&signup(), 1000.0, 1, 2000.0, &D1);
        assert_eq!(one.queries_per_s, 8000.0);
        assert_eq!(one.utilisation, 8.0);
        assert_eq!(one.ceiling_per_s, 125.0);
        assert_eq!(one.flows_to_full, 5e6);
        let eight = d1_load(&signup(), 1000.0, 8, 2000.0, &D1);
        assert_eq!(eight.utilisation, 1.0);
        assert_eq!(eight.ceiling_per_s, 1000.0);
        assert_eq!(eight.flows_to_full, 40e6);
        assert_eq!(shards_needed(&signup(), 1000.0, 0.5, &D1), 16);
        assert_eq!(shards_needed(&signup(), 1.0, 0.5, &D1), 1);
    }
}
