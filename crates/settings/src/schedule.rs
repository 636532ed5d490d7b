//! `schedule:`: when a watch is checked, every N minutes or on a crontab line.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A fixed interval, written `15m`, `1h30m`, `90s`.
    Every(Duration),
    /// A five-field crontab line (`*/15 * * * *`), evaluated in UTC.
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// Parses an interval or a crontab line; the error says which forms work.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let t = s.trim();
        if let Ok(d) = humantime::parse_duration(t) {
            if d < Duration::from_secs(1) {
                return Err(format!("schedule {s:?}: an interval must be at least 1s"));
            }
            return Ok(Schedule::Every(d));
        }
        croner::Cron::from_str(t)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| {
                format!(
                    "schedule {s:?} is neither an interval (15m, 1h) nor a crontab line (*/15 * * * *): {e}"
                )
            })
    }

    /// The first time strictly after `now` this schedule fires.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => {
                now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::hours(1))
            }
            Schedule::Cron(c) => c
                .find_next_occurrence(&now, false)
                .unwrap_or(now + chrono::Duration::hours(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals_and_cron() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 7, 30).unwrap();
        let s = Schedule::parse("15m").unwrap();
        assert_eq!(s.next_after(now), now + chrono::Duration::minutes(15));
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            s.next_after(now),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 0).unwrap()
        );
        let s = Schedule::parse("0 3 * * 1").unwrap();
        assert_eq!(
            s.next_after(now),
            Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
        );
        assert!(
            Schedule::parse("every tuesday")
                .unwrap_err()
                .contains("neither an interval")
        );
        assert!(Schedule::parse("0ms").is_err());
    }
}
