//! A `metrics` recorder for tests that keeps every series' value, keyed as
//! `name{label=value,…}` with labels in the order they were given.
//!
//! Written here rather than taken from metrics-util's debugging recorder: that feature pulls
//! in two crates and changes metrics-util's features under the Prometheus exporter, which
//! would rebuild the exporter and everything above it whenever these tests are built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

#[derive(Debug, Default)]
pub struct TestRecorder {
    series: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

impl TestRecorder {
    /// A counter's total or a gauge's value.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.samples(series).last().copied()
    }

    /// A histogram's observations, in order.
    pub fn samples(&self, series: &str) -> Vec<f64> {
        self.series
            .lock()
            .unwrap()
            .get(series)
            .cloned()
            .unwrap_or_default()
    }

    fn cell(&self, key: &Key, kind: Kind) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        Arc::new(Cell {
            name,
            kind,
            series: self.series.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

struct Cell {
    name: String,
    kind: Kind,
    series: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

impl Cell {
    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let mut series = self.series.lock().unwrap();
        let values = series.entry(self.name.clone()).or_default();
        match self.kind {
            Kind::Histogram => values.push(f(0.0)),
            Kind::Counter | Kind::Gauge => {
                let current = values.last().copied().unwrap_or(0.0);
                *values = vec![f(current)];
            }
        }
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|current| current + value as f64);
    }

    fn absolute(&self, value: u64) {
        self.update(|current| current.max(value as f64));
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|current| current + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|current| current - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.update(|_| value);
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key, Kind::Counter))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key, Kind::Gauge))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key, Kind::Histogram))
    }
}
