use std::sync::Mutex;

use time::OffsetDateTime;

use fb_core::Clock;

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<OffsetDateTime>,
}

impl FakeClock {
    /// 2027-01-15T08:00:00Z: a fixed, recognisable instant.
    pub fn new() -> Self {
        Self::at(
            OffsetDateTime::from_unix_timestamp(1_800_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    pub fn at(now: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// The current fake time (the `Clock` trait's `now`, without importing the trait).
    pub fn now_for_tests(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
