//! Scheduled runs (retraining, evaluation): which cron tick, if any, is
//! due. Missed ticks are not queued (a tick that comes while a run is going
//! is skipped), so at most the latest missed tick starts a run.

use croner::Cron;
use jiff::Timestamp;

/// What the schedule says at a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The latest tick after `since` and not after `now`, if any.
    pub tick: Option<Timestamp>,
    /// The first tick after `now`.
    pub next: Option<Timestamp>,
}

/// Ticks of `cron` (evaluated in UTC) since `since`, as seen at `now`.
pub fn due(cron: &Cron, since: Timestamp, now: Timestamp) -> Due {
    let utc = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC);
    let next = cron
        .find_next_occurrence(&utc(now), false)
        .ok()
        .map(|z| z.timestamp());
    // The latest tick in (since, now]: the previous occurrence of `now`
    // (inclusive), kept only when it is after `since`.
    let tick = cron
        .find_previous_occurrence(&utc(now), true)
        .ok()
        .map(|z| z.timestamp())
        .filter(|t| *t > since);
    Due { tick, next }
}

impl Due {
    /// How long from `now` until the next tick (a second past it).
    pub fn wait(&self, now: Timestamp) -> Option<std::time::Duration> {
        self.next.map(|n| {
            let wait = n.as_second() - now.as_second();
            std::time::Duration::from_secs(u64::try_from(wait).unwrap_or(0) + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::validation::parse_schedule;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn only_the_latest_missed_tick_is_due() {
        let cron = parse_schedule("0 2 * * *").unwrap();
        let due = due(
            &cron,
            at("2026-01-01T03:00:00Z"),
            at("2026-01-04T12:00:00Z"),
        );
        assert_eq!(due.tick, Some(at("2026-01-04T02:00:00Z")));
        assert_eq!(due.next, Some(at("2026-01-05T02:00:00Z")));
    }

    #[test]
    fn nothing_is_due_before_the_next_tick() {
        let cron = parse_schedule("* * * * *").unwrap();
        let since = at("2026-01-01T00:00:00Z");
        assert_eq!(due(&cron, since, at("2026-01-01T00:00:30Z")).tick, None);
        let now = at("2026-01-01T00:01:10Z");
        let result = due(&cron, since, now);
        assert_eq!(result.tick, Some(at("2026-01-01T00:01:00Z")));
        assert_eq!(result.next, Some(at("2026-01-01T00:02:00Z")));
        // A tick already started is not due again.
        assert_eq!(due(&cron, at("2026-01-01T00:01:00Z"), now).tick, None);
    }

    #[test]
    fn macros_work() {
        let cron = parse_schedule("@hourly").unwrap();
        let result = due(
            &cron,
            at("2026-01-01T00:00:00Z"),
            at("2026-01-01T01:00:00Z"),
        );
        assert_eq!(result.tick, Some(at("2026-01-01T01:00:00Z")));
    }
}
