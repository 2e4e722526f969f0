//! Wall-clock time for object timestamps and random seeds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds.
pub(crate) use app_client::unix_now as now;

/// Nanoseconds since the Unix epoch (0 if the clock is before it): seed material only.
pub(crate) fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
