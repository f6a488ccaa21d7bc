//! Whether a delivery attempt succeeded, and when to try again if not.
//!
//! Everything here is a pure function of its inputs and a caller-supplied random source, so
//! the delivery worker decides with the real generator and the tests with a seeded one.
//!
//! # The schedule
//!
//! The specification's example schedule, followed as published: the first attempt is
//! immediate, then retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h — ten
//! attempts in all. Nominally the last attempt comes 75 h 35 min 5 s (about 3.15 days) after
//! the first. With the default equal jitter each wait is between half and all of its nominal
//! value, so the last attempt comes between about 1.57 and 3.15 days after the first (about
//! 2.36 days on average): long enough to ride out a weekend outage of the receiver, short
//! enough that a dead endpoint is given up on (and its owner told) within days.
//!
//! # Jitter
//!
//! Without jitter, every delivery that failed during the same outage would come back at the
//! same instant and could knock the recovering receiver over again. Equal jitter (the default)
//! keeps each wait at least half its nominal value, so the schedule's shape survives; full
//! jitter (anywhere from zero to the nominal value) spreads load best but can retry almost at
//! once.
//!
//! # What counts as delivered
//!
//! A 2xx answer is delivered. 410 Gone is the receiver saying it wants no more deliveries: the
//! endpoint is disabled. Everything else is retried: 429 and 5xx obviously, timeouts and
//! connection errors too, and also 3xx (redirects are not followed) and the other 4xx. A 4xx
//! is usually permanent, but in practice webhook receivers answer 400, 401, 403 or 404 during
//! deployments and misconfigurations that their owners fix within hours; the retry window is
//! what lets those deliveries through once fixed. Svix, which wrote the specification, retries
//! every non-2xx for the same reason.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The waits before the second through tenth attempts (the first is immediate).
pub const STANDARD_DELAYS: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The longest wait a `Retry-After` can ask for. A receiver may ask for more time than the
/// schedule gives, and it gets it, but a header saying "in a year" (or a typo saying so) must
/// not park a delivery past the whole retry window in one step, nor let one receiver hold its
/// messages hostage: six hours keeps at least a third of the window in the schedule's hands.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(6 * 3600);

/// How a nominal wait is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the nominal wait; for tests and for operators who want a fixed schedule.
    None,
    /// Uniform between zero and the nominal wait.
    Full,
    /// Half the nominal wait plus a uniform part up to the other half.
    Equal,
}

/// What an attempt's result means for the delivery and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The receiver took it (2xx).
    Delivered,
    /// The receiver wants no more deliveries (410 Gone): disable the endpoint.
    Disable,
    /// Try again later, if the schedule has attempts left.
    Retry,
}

/// What an HTTP status says about an attempt (see the module documentation for why every
/// other status retries). Timeouts and connection errors have no status and always retry.
pub fn disposition(status: u16) -> Disposition {
    match status {
        200..=299 => Disposition::Delivered,
        410 => Disposition::Disable,
        _ => Disposition::Retry,
    }
}

/// The attempts of one delivery: nominal waits, their jitter and the `Retry-After` cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: Jitter,
    retry_after_cap: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetrySchedule {
    /// [`STANDARD_DELAYS`] with equal jitter and [`DEFAULT_RETRY_AFTER_CAP`].
    pub fn standard() -> Self {
        Self::new(STANDARD_DELAYS.to_vec(), Jitter::Equal)
    }

    /// A schedule with these waits before the second, third, … attempt.
    pub fn new(delays: Vec<Duration>, jitter: Jitter) -> Self {
        Self {
            delays,
            jitter,
            retry_after_cap: DEFAULT_RETRY_AFTER_CAP,
        }
    }

    /// The same schedule with another cap on `Retry-After`.
    #[must_use]
    pub fn with_retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    /// How many attempts a delivery gets, the first included.
    pub fn max_attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The wait before the next attempt, without jitter, once `failed_attempts` attempts have
    /// failed; zero before the first attempt, `None` when the schedule is exhausted.
    pub fn nominal_delay(&self, failed_attempts: usize) -> Option<Duration> {
        match failed_attempts {
            0 => Some(Duration::ZERO),
            n => self.delays.get(n - 1).copied(),
        }
    }

    /// The time from the first attempt to the last one when every wait is nominal.
    pub fn nominal_span(&self) -> Duration {
        self.delays.iter().sum()
    }

    /// The wait before the next attempt once `failed_attempts` attempts have failed, jittered
    /// with `rng`; `None` when the schedule is exhausted and the delivery has failed for good.
    ///
    /// A `Retry-After` from the last answer lengthens the wait to what it asks, up to the cap;
    /// it never shortens it, since a receiver under load is no reason to retry sooner than
    /// the schedule would, and it never grants an attempt the schedule does not have.
    pub fn delay_after<R: Rng + ?Sized>(
        &self,
        failed_attempts: usize,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Option<Duration> {
        let nominal = self.nominal_delay(failed_attempts)?;
        let jittered = apply_jitter(nominal, self.jitter, rng);
        let asked = retry_after.map_or(Duration::ZERO, |asked| asked.min(self.retry_after_cap));
        Some(jittered.max(asked))
    }
}

/// Millisecond resolution: plenty for waits of seconds to hours, and it keeps the arithmetic
/// in integers.
fn apply_jitter<R: Rng + ?Sized>(nominal: Duration, jitter: Jitter, rng: &mut R) -> Duration {
    let nominal_ms = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
    let jittered_ms = match jitter {
        Jitter::None => nominal_ms,
        Jitter::Full => rng.random_range(0..=nominal_ms),
        Jitter::Equal => {
            let half = nominal_ms / 2;
            half + rng.random_range(0..=nominal_ms - half)
        }
    };
    Duration::from_millis(jittered_ms)
}

/// The wait a `Retry-After` value asks for, measured from `now`: either delta-seconds (`120`)
/// or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`, or the two obsolete forms HTTP still
/// accepts). A date in the past asks for no wait. `None` when the value is neither form;
/// a number too large for a `u64` is read as "as long as possible" and left to the cap.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use rand::SeedableRng as _;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const HOUR: u64 = 3600;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0x5eed)
    }

    #[test]
    fn the_standard_schedule_is_the_specification_example() {
        let schedule = RetrySchedule::standard();
        assert_eq!(schedule.max_attempts(), 10);
        let nominal: Vec<u64> = (0..=10)
            .map_while(|failed| schedule.nominal_delay(failed))
            .map(|delay| delay.as_secs())
            .collect();
        assert_eq!(
            nominal,
            [
                0,
                5,
                300,
                1800,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                14 * HOUR,
                20 * HOUR,
                24 * HOUR
            ]
        );
        assert_eq!(schedule.nominal_span().as_secs(), 75 * HOUR + 35 * 60 + 5);
    }

    #[test]
    fn the_first_attempt_is_immediate_and_the_eleventh_never_comes() {
        let schedule = RetrySchedule::standard();
        let mut rng = rng();
        assert_eq!(
            schedule.delay_after(0, None, &mut rng),
            Some(Duration::ZERO)
        );
        assert_eq!(schedule.delay_after(10, None, &mut rng), None);
        assert_eq!(
            schedule.delay_after(10, Some(Duration::from_secs(1)), &mut rng),
            None
        );
    }

    #[test]
    fn equal_jitter_keeps_each_wait_between_half_and_all_of_it() {
        let schedule = RetrySchedule::standard();
        let mut rng = rng();
        for failed in 1..=9 {
            let nominal = schedule.nominal_delay(failed).expect("within the schedule");
            let (mut low, mut high) = (Duration::MAX, Duration::ZERO);
            for _ in 0..2_000 {
                let delay = schedule
                    .delay_after(failed, None, &mut rng)
                    .expect("within the schedule");
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "{delay:?} vs {nominal:?}"
                );
                low = low.min(delay);
                high = high.max(delay);
            }
            // The draws cover the range rather than sticking to one end.
            assert!(
                low < nominal * 6 / 10 && high > nominal * 9 / 10,
                "{failed}"
            );
        }
    }

    #[test]
    fn full_jitter_spreads_each_wait_from_zero_to_all_of_it() {
        let schedule = RetrySchedule::new(STANDARD_DELAYS.to_vec(), Jitter::Full);
        let mut rng = rng();
        let nominal = Duration::from_secs(2 * HOUR);
        let draws: Vec<Duration> = (0..2_000)
            .map(|_| schedule.delay_after(4, None, &mut rng).expect("within"))
            .collect();
        assert!(draws.iter().all(|delay| *delay <= nominal));
        assert!(draws.iter().any(|delay| *delay < nominal / 10));
        assert!(draws.iter().any(|delay| *delay > nominal * 9 / 10));
    }

    #[test]
    fn the_whole_window_with_equal_jitter_is_one_and_a_half_to_three_days() {
        let schedule = RetrySchedule::standard();
        let mut rng = rng();
        let day = Duration::from_secs(24 * HOUR);
        for _ in 0..500 {
            let total: Duration = (1..=9)
                .map(|failed| {
                    schedule
                        .delay_after(failed, None, &mut rng)
                        .expect("within")
                })
                .sum();
            assert!(total >= day * 3 / 2 && total <= day * 32 / 10, "{total:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let schedule = RetrySchedule::standard();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (1..=9)
                .map(|failed| schedule.delay_after(failed, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn retry_after_lengthens_a_wait_up_to_the_cap_and_never_shortens_it() {
        let schedule = RetrySchedule::new(STANDARD_DELAYS.to_vec(), Jitter::None);
        let mut rng = rng();
        let secs = |secs: u64| Some(Duration::from_secs(secs));
        // After the first failure the schedule says 5 s.
        assert_eq!(schedule.delay_after(1, secs(120), &mut rng), secs(120));
        assert_eq!(schedule.delay_after(1, secs(1), &mut rng), secs(5));
        assert_eq!(
            schedule.delay_after(1, secs(365 * 24 * HOUR), &mut rng),
            Some(DEFAULT_RETRY_AFTER_CAP)
        );
        // After the eighth the schedule's 20 h already exceeds the cap.
        assert_eq!(
            schedule.delay_after(8, secs(365 * 24 * HOUR), &mut rng),
            secs(20 * HOUR)
        );
        let capped = schedule
            .clone()
            .with_retry_after_cap(Duration::from_secs(60));
        assert_eq!(capped.delay_after(1, secs(3600), &mut rng), secs(60));
    }

    #[test]
    fn two_hundreds_deliver_gone_disables_and_everything_else_retries() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(disposition(status), Disposition::Delivered, "{status}");
        }
        assert_eq!(disposition(410), Disposition::Disable);
        for status in [
            100, 199, 300, 301, 302, 304, 307, 308, 400, 401, 403, 404, 408, 409, 413, 422, 429,
            500, 502, 503, 504, 599,
        ] {
            assert_eq!(disposition(status), Disposition::Retry, "{status}");
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        // 1994-11-06 08:49:37 UTC, the date HTTP's own examples use.
        let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = date - Duration::from_secs(90);
        let cases: [(&str, Option<u64>); 12] = [
            ("120", Some(120)),
            (" 120 ", Some(120)),
            ("0", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(90)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(90)),
            ("Sun Nov  6 08:49:37 1994", Some(90)),
            ("Sun, 06 Nov 1994 08:46:37 GMT", Some(0)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }
}
