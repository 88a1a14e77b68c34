//! Per-row labelling: which rows are scored, which window each belongs to, and how
//! much a detection on that row is worth before the profile's weights are applied.

use super::error::NabError;
use super::{ScoredFile, Window};

/// Share of each file NAB gives a detector to learn in, never scored.
pub const PROBATION_SHARE: f64 = 0.15;
/// NAB caps the probationary period at 15% of 5000 rows.
const PROBATION_CAP_ROWS: usize = 750;
/// Beyond this relative distance past a window a false positive costs the full weight.
const FAR_PAST_WINDOW: f64 = 3.0;

/// Rows at the start of a series of `rows` rows that NAB does not score.
pub fn probationary_length(rows: usize) -> usize {
    // floor(0.15 * n), computed in integers so that e.g. n = 4032 gives 604 exactly.
    (rows.saturating_mul(15) / 100).min(PROBATION_CAP_ROWS)
}

/// NAB's positional weight: close to +1 at the left edge of a window (relative
/// position -1), 0 at its right edge, falling to -1 for false positives far behind it.
pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position >= FAR_PAST_WINDOW {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * relative_position).exp()) - 1.0
    }
}

/// Where a row stands for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    /// In the probationary period: ignored whatever the detector says.
    Probation,
    /// Outside every window: a detection here is a false positive.
    Outside,
    /// Inside the window with this index among the file's scorable windows.
    Window(usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub score: f64,
    pub zone: Zone,
    /// The positional weight before the profile's tp/fp weight is applied.
    pub position_weight: f64,
}

/// A file checked and labelled once, then scored under any number of profiles.
#[derive(Debug, Clone)]
pub struct PreparedFile {
    pub(crate) name: String,
    pub(crate) rows: Vec<Row>,
    /// Windows with at least one scored row: each costs a false negative when missed.
    pub(crate) scorable_windows: usize,
    /// All windows that overlap the data, as NAB counts them for the perfect score.
    pub(crate) windows: usize,
}

impl PreparedFile {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scorable_windows(&self) -> usize {
        self.scorable_windows
    }

    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Checks a detector's output and labels every row.
    pub fn new(file: &ScoredFile) -> Result<Self, NabError> {
        validate(file)?;
        let spans = window_spans(file)?;
        let probation = probationary_length(file.timestamps.len());
        let max_tp = scaled_sigmoid(-1.0);

        let mut rows = Vec::with_capacity(file.scores.len());
        let mut spans_iter = spans.iter().copied().enumerate().peekable();
        let mut current: Option<(usize, Span)> = None;
        let mut previous: Option<Span> = None;
        let mut scored_window_ids = Vec::new();

        for (i, &score) in file.scores.iter().enumerate() {
            if current.is_none()
                && let Some(&(id, span)) = spans_iter.peek()
                && span.first == i
            {
                current = Some((id, span));
                spans_iter.next();
            }
            let (zone, position_weight) = match current {
                Some((id, span)) => {
                    let width = span.width() as f64;
                    // Same convention as NAB: the first row sits at -1, the last at -1/width.
                    let position = -((span.last + 1 - i) as f64) / width;
                    (Zone::Window(id), scaled_sigmoid(position) / max_tp)
                }
                None => {
                    let position = match previous {
                        None => FAR_PAST_WINDOW,
                        Some(prev) => {
                            let denominator = prev.width().saturating_sub(1).max(1) as f64;
                            (i - prev.last) as f64 / denominator
                        }
                    };
                    (Zone::Outside, scaled_sigmoid(position))
                }
            };
            let zone = if i < probation { Zone::Probation } else { zone };
            if let Zone::Window(id) = zone
                && scored_window_ids.last() != Some(&id)
            {
                scored_window_ids.push(id);
            }
            rows.push(Row {
                score,
                zone,
                position_weight,
            });
            if let Some((_, span)) = current
                && span.last == i
            {
                previous = Some(span);
                current = None;
            }
        }

        // Renumber windows densely over the scorable ones so that callers can index arrays.
        // Only windows that reach past probation appear in `rows`, and each of them is in
        // `scored_window_ids`, so every lookup below hits an entry that was set.
        let mut dense = vec![0; spans.len()];
        for (k, &id) in scored_window_ids.iter().enumerate() {
            dense[id] = k;
        }
        for row in &mut rows {
            if let Zone::Window(id) = row.zone {
                row.zone = Zone::Window(dense[id]);
            }
        }

        Ok(Self {
            name: file.name.clone(),
            rows,
            scorable_windows: scored_window_ids.len(),
            windows: spans.len(),
        })
    }
}

/// A window as a range of row indices, both ends included.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: usize,
    last: usize,
}

impl Span {
    fn width(self) -> usize {
        self.last - self.first + 1
    }
}

fn validate(file: &ScoredFile) -> Result<(), NabError> {
    if file.timestamps.len() != file.scores.len() {
        return Err(NabError::LengthMismatch {
            file: file.name.clone(),
            timestamps: file.timestamps.len(),
            scores: file.scores.len(),
        });
    }
    if let Some((row, &value)) = file
        .scores
        .iter()
        .enumerate()
        .find(|(_, s)| !(0.0..=1.0).contains(*s))
    {
        return Err(NabError::ScoreOutOfRange {
            file: file.name.clone(),
            row,
            value,
        });
    }
    Ok(())
}

/// Maps each window's time range onto the rows it covers, scanning forward as NAB does:
/// a window starts at the first row (after the previous window) at or past its start and
/// ends before the first later row past its end. Real series contain repeated timestamps
/// (clock changes) and even small steps back, so no global ordering is required; windows
/// that cover no row are dropped.
fn window_spans(file: &ScoredFile) -> Result<Vec<Span>, NabError> {
    let ts = &file.timestamps;
    let mut spans: Vec<Span> = Vec::with_capacity(file.windows.len());
    let mut previous_end: Option<i64> = None;
    let mut cursor = 0;
    for (index, &Window { start, end }) in file.windows.iter().enumerate() {
        let overlaps = previous_end.is_some_and(|prev| start <= prev);
        if end < start || overlaps {
            return Err(NabError::BadWindow {
                file: file.name.clone(),
                index,
            });
        }
        previous_end = Some(end);
        let Some(first) = (cursor..ts.len()).find(|&i| ts[i] >= start) else {
            break;
        };
        let past_last = (first..ts.len()).find(|&i| ts[i] > end).unwrap_or(ts.len());
        if first < past_last {
            spans.push(Span {
                first,
                last: past_last - 1,
            });
            cursor = past_last;
        } else {
            cursor = first;
        }
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probation_is_fifteen_percent_capped_at_750() {
        assert_eq!(probationary_length(4032), 604);
        assert_eq!(probationary_length(1000), 150);
        assert_eq!(probationary_length(22695), 750);
        assert_eq!(probationary_length(0), 0);
    }

    #[test]
    fn sigmoid_matches_nab_reference_points() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614).abs() < 1e-6);
        assert!((scaled_sigmoid(-0.5) - 0.848_283).abs() < 1e-6);
        assert!(scaled_sigmoid(0.0).abs() < 1e-12);
        assert!((scaled_sigmoid(1.0) + 0.986_614).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }
}
