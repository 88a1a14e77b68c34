//! Streaming anomaly detectors: one `update(timestamp, value) -> score in [0, 1]` per
//! point, bounded work and memory per stream, deterministic.
//!
//! # The detector: [`NoveltyDetector`]
//!
//! An anomaly, in the streams FactoryBrain watches, is mostly *something this sensor has
//! not done before*: a spike higher than any seen, a jump to a new level, a change of
//! rhythm. The detector therefore asks of every point how far the recent stretch of the
//! stream is from everything it remembers, and how that distance compares with what is
//! usual for this stream:
//!
//! 1. **Pattern.** The newest value plus the means of the 7 preceding blocks of `step`
//!    points (the pattern covers 5% of the warm-up). The newest value is kept raw so that a
//!    spike is seen on its first point; the block means smooth noise so that a sustained
//!    shift is seen too.
//! 2. **Memory.** 1024 past patterns: one per block, plus every pattern found novel, so
//!    that something that recurs (a daily spike, a new operating level) is known the next
//!    time it comes. Patterns that overlap the current one in time are skipped.
//! 3. **Novelty.** Distance to the nearest remembered pattern over its typical value
//!    (an EWMA with a half-life of one warm-up): a noise-free stream and a noisy one
//!    both have novelty about 1 when nothing happens.
//! 4. **Range gate.** A distance only counts in full once it reaches 30% of the stream's
//!    operating range (1st to 99th percentile of a sample of past values), so that noise
//!    that is merely unusual in shape, on a stream that swings widely, does not alarm.
//! 5. **Sustained novelty.** Numenta's "anomaly likelihood" idea on the novelty: its
//!    average over 5% of the warm-up against its own long-run mean and deviation
//!    (exponentially weighted, half-life ten warm-ups), as a Gaussian tail. A subtle shift that lasts becomes an alarm at a tail of 3e-5 even if
//!    no single point is far out.
//! 6. **One alarm per event.** The score is the larger of the two views, scaled so that
//!    0.08 is the alarm level; after an alarm the detector stays quiet for 20% of the
//!    warm-up.
//!
//! All time scales are shares of the warm-up length, which is the one setting a
//! deployment chooses (NAB uses 15% of each file, at most 750 points, and gives the same
//! rule to every detector). The first `warmup` points only train the detector.
//!
//! # What was tried on NAB (standard / reward low FP / reward low FN, one setting for all
//! files, NAB's corpus-wide threshold)
//!
//! | variant | std | low FP | low FN |
//! |---|---|---|---|
//! | nearest-pattern distance on block means, Gaussian likelihood of log-distance | 27.9 | 20.4 | 34.0 |
//! | same on raw distance | 39.9 | 36.1 | 43.6 |
//! | CAD-like sequence novelty (8 quantised levels, orders 1-4, hashed seen-set) + likelihood | 37.3 | 29.3 | 42.1 |
//! | lagged-value pattern, novelty = distance / typical distance, refractory | 58.0 | 46.9 | 63.7 |
//! | ... calibrated by its empirical tail instead (log histogram) | 46.9 | 41.6 | 50.7 |
//! | ... also remembering novel patterns | 58.7 | 48.2 | 64.2 |
//! | ... max over three pattern spans | 57.0 | 42.9 | 63.6 |
//! | ... plus mean novelty over 5% of warm-up | 62.7 | 49.9 | 68.8 |
//! | ... plus gate on max - min range | 66.2 | 56.3 | 71.4 |
//! | ... k = 2, 3, 5 nearest instead of 1 | 65.3 / 65.3 / 64.4 | | |
//! | ... alarm-rate pressure raising the bar | 65.5 | 59.2 | 69.5 |
//! | ... block-mean pattern, Gaussian likelihood for the sustained part | 67.3 | 60.7 | 71.3 |
//! | ... gate on the 1%-99% range (robust to one old outlier), tail 3e-5 | 70.0 | 60.3 | 75.4 |
//! | final: as above, O(1)-memory EWMA history (half-life 10 warm-ups) | **70.2** | **60.4** | **75.5** |
//!
//! Neighbouring settings score within about a point (gate 0.2-0.4 of the range, tail
//! 1e-5 to 1e-4, refractory 15-20% of warm-up, history half-life 8-20 warm-ups: 70.0 to
//! 70.5), which is why these were kept rather than a sharper optimum. With a fixed warm-up
//! of 300 / 600 / 750 points on every file instead of NAB's rule the standard score is
//! 57.7 / 59.3 / 60.8: the time scales matter, and the warm-up should be chosen per
//! sensor family in production rather than left at one global number. For reference: Numenta HTM 70.1, CAD OSE 69.9, ARTime 74.9; the last
//! two read each file's global minimum and maximum before starting, which a live stream
//! cannot, and this detector does not.

mod error;
pub mod likelihood;
pub mod math;
pub mod memory;
pub mod novelty;

pub use error::DetectorError;
pub use novelty::{NoveltyConfig, NoveltyDetector};

/// A detector that scores one stream, point by point.
pub trait StreamingDetector {
    /// Learns from the point and returns its anomaly score in [0, 1].
    fn update(&mut self, timestamp: i64, value: f64) -> f64;

    /// Bytes the detector holds, on the stack and the heap; fixed after construction.
    fn memory_bytes(&self) -> usize;
}
