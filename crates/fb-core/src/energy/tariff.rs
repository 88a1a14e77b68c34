//! Tariff windows: the price per kWh by weekday and time of day (UTC).
//!
//! A window runs from `start` (inclusive) to `end` (exclusive) on each of its weekdays (every
//! day when none is named). `end <= start` means the window crosses midnight: it starts on one of
//! its weekdays and runs into the next morning, so 22:00–06:00 on Friday covers Saturday 03:00.
//! The first window that covers an instant sets its price; outside every window the off-peak
//! price applies.

use time::{OffsetDateTime, Weekday};

/// Minutes since midnight, 0..1440.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `HH:MM`, 00:00 to 23:59; `24:00` is accepted as the end of the day.
    pub fn parse(s: &str) -> Option<Self> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        match (h, m) {
            (24, 0) => Some(Self(1440)),
            (0..=23, 0..=59) => Some(Self(h * 60 + m)),
            _ => None,
        }
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    fn of(t: OffsetDateTime) -> u16 {
        u16::from(t.hour()) * 60 + u16::from(t.minute())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TariffWindow {
    pub name: String,
    /// Peak windows are the ones non-critical runs are moved out of.
    pub peak: bool,
    /// Empty: every day.
    pub days: Vec<Weekday>,
    pub start: TimeOfDay,
    pub end: TimeOfDay,
    pub price_per_kwh: f64,
}

impl TariffWindow {
    fn on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// Whether the window covers the instant (taken in UTC).
    pub fn covers(&self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let m = TimeOfDay::of(t);
        let (s, e) = (self.start.0, self.end.0);
        if s < e {
            self.on(t.weekday()) && (s..e).contains(&m)
        } else {
            // Crosses midnight: the evening part belongs to today, the morning part to the day
            // the window started, yesterday.
            (m >= s && self.on(t.weekday())) || (m < e && self.on(t.weekday().previous()))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    pub off_peak_price: f64,
    pub windows: Vec<TariffWindow>,
}

/// A tariff that cannot be used, naming the window's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TariffError {
    pub field: String,
    pub reason: String,
}

impl Tariff {
    /// The window covering the instant, if any.
    pub fn window_at(&self, t: OffsetDateTime) -> Option<&TariffWindow> {
        self.windows.iter().find(|w| w.covers(t))
    }

    /// The price per kWh at the instant.
    pub fn price_at(&self, t: OffsetDateTime) -> f64 {
        self.window_at(t)
            .map_or(self.off_peak_price, |w| w.price_per_kwh)
    }

    /// Whether the instant lies in a peak window.
    pub fn is_peak(&self, t: OffsetDateTime) -> bool {
        self.window_at(t).is_some_and(|w| w.peak)
    }

    /// The cheapest price anywhere in the tariff (where shifted runs go).
    pub fn lowest_price(&self) -> f64 {
        self.windows
            .iter()
            .map(|w| w.price_per_kwh)
            .fold(self.off_peak_price, f64::min)
    }

    /// Checks prices (finite, not negative) and that a window is not empty.
    pub fn validate(&self, path: &str) -> Vec<TariffError> {
        let mut errors = Vec::new();
        let bad_price = |p: f64| !p.is_finite() || p < 0.0;
        if bad_price(self.off_peak_price) {
            errors.push(TariffError {
                field: format!("{path}.off_peak_price"),
                reason: "must be a number of at least 0".into(),
            });
        }
        for (i, w) in self.windows.iter().enumerate() {
            if bad_price(w.price_per_kwh) {
                errors.push(TariffError {
                    field: format!("{path}.windows[{i}].price_per_kwh"),
                    reason: "must be a number of at least 0".into(),
                });
            }
            if w.start == w.end {
                errors.push(TariffError {
                    field: format!("{path}.windows[{i}].end"),
                    reason: "must differ from start".into(),
                });
            }
            if w.name.trim().is_empty() {
                errors.push(TariffError {
                    field: format!("{path}.windows[{i}].name"),
                    reason: "must not be empty".into(),
                });
            }
        }
        errors
    }

    /// Cost of energy drawn in buckets: each bucket's kWh at the price of its start.
    pub fn cost(&self, buckets: impl IntoIterator<Item = (OffsetDateTime, f64)>) -> f64 {
        buckets
            .into_iter()
            .map(|(at, kwh)| kwh * self.price_at(at))
            .sum()
    }
}
