//! The sample encoding of the `data` column of segments (readings, `migrations/0005`) and score
//! segments (`migrations/0006`): 16 bytes a sample, the time (Unix microseconds, i64) in the first
//! eight and the payload in the other eight, little-endian. Merging works on the raw form, so it
//! is the same for both tables.

/// One sample: time and payload, 8 bytes each.
pub(crate) const SAMPLE_BYTES: usize = 16;

/// Which table a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `segments`: payload is the value (f64).
    Readings,
    /// `score_segments`: payload is the score (f32) and flags (u32; bit 0: anomaly).
    Scores,
}

impl Table {
    pub(crate) const ALL: [Table; 2] = [Table::Readings, Table::Scores];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Readings => "segments",
            Table::Scores => "score_segments",
        }
    }
}

/// A sample as stored, payload still encoded.
pub(crate) type RawSample = (i64, [u8; 8]);

pub(crate) fn score_payload(score: f32, anomaly: bool) -> [u8; 8] {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&score.to_le_bytes());
    payload[4..].copy_from_slice(&u32::from(anomaly).to_le_bytes());
    payload
}

/// (score, anomaly) of a score payload.
pub(crate) fn score_of(payload: [u8; 8]) -> (f32, bool) {
    let score = f32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let flags = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
    (score, flags & 1 == 1)
}

/// `samples` must be sorted by time.
pub(crate) fn encode_raw(samples: &[RawSample]) -> Vec<u8> {
    let mut data = Vec::with_capacity(samples.len() * SAMPLE_BYTES);
    for (ts, payload) in samples {
        data.extend_from_slice(&ts.to_le_bytes());
        data.extend_from_slice(payload);
    }
    data
}

/// Appends the samples of `data` to `out`, payloads as stored.
pub(crate) fn decode_raw_into(data: &[u8], out: &mut Vec<RawSample>) -> Result<(), String> {
    if !data.len().is_multiple_of(SAMPLE_BYTES) {
        return Err(format!(
            "segment of {} bytes is not a whole number of samples",
            data.len()
        ));
    }
    out.reserve(data.len() / SAMPLE_BYTES);
    for sample in data.chunks_exact(SAMPLE_BYTES) {
        let mut ts = [0u8; 8];
        let mut payload = [0u8; 8];
        ts.copy_from_slice(&sample[..8]);
        payload.copy_from_slice(&sample[8..]);
        out.push((i64::from_le_bytes(ts), payload));
    }
    Ok(())
}

/// Largest segment compaction writes: 64 KiB of samples, so that reading a few minutes of a
/// fast sensor never decodes a whole hour of it.
pub(crate) const MAX_SAMPLES: usize = 4096;

/// Hour chunks: segments never span two, so retention removes whole segments.
pub(crate) const CHUNK_MICROS: i64 = 3_600_000_000;

pub(crate) fn chunk_of(ts: i64) -> i64 {
    ts.div_euclid(CHUNK_MICROS)
}

/// `samples` must be sorted by time.
pub(crate) fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut data = Vec::with_capacity(samples.len() * SAMPLE_BYTES);
    for &(ts, value) in samples {
        data.extend_from_slice(&ts.to_le_bytes());
        data.extend_from_slice(&value.to_le_bytes());
    }
    data
}

/// Appends the samples of `data` to `out`.
pub(crate) fn decode_into(data: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), String> {
    if !data.len().is_multiple_of(SAMPLE_BYTES) {
        return Err(format!(
            "segment of {} bytes is not a whole number of samples",
            data.len()
        ));
    }
    out.reserve(data.len() / SAMPLE_BYTES);
    for sample in data.chunks_exact(SAMPLE_BYTES) {
        let (ts, value) = sample.split_at(8);
        let ts = i64::from_le_bytes(ts.try_into().map_err(|_| "short sample")?);
        let value = f64::from_le_bytes(value.try_into().map_err(|_| "short sample")?);
        out.push((ts, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip() {
        let samples = vec![(-5, -1.5), (0, 0.0), (1_800_000_000_000_000, f64::MAX)];
        let data = encode(&samples);
        assert_eq!(data.len(), 3 * SAMPLE_BYTES);
        let mut back = Vec::new();
        decode_into(&data, &mut back).unwrap();
        assert_eq!(back, samples);
        assert!(decode_into(&data[..20], &mut back).is_err());
    }

    #[test]
    fn score_payloads_round_trip_through_raw_samples() {
        let raw = vec![
            (5, score_payload(0.25, true)),
            (9, score_payload(1.0, false)),
        ];
        let mut back = Vec::new();
        decode_raw_into(&encode_raw(&raw), &mut back).unwrap();
        assert_eq!(back, raw);
        assert_eq!(score_of(back[0].1), (0.25, true));
        assert_eq!(score_of(back[1].1), (1.0, false));
        // A readings segment read raw carries the value's bytes.
        let mut readings = Vec::new();
        decode_raw_into(&encode(&[(1, 2.5)]), &mut readings).unwrap();
        assert_eq!(readings, vec![(1, 2.5f64.to_le_bytes())]);
    }

    #[test]
    fn chunks_are_hours_floored() {
        assert_eq!(chunk_of(0), 0);
        assert_eq!(chunk_of(CHUNK_MICROS - 1), 0);
        assert_eq!(chunk_of(CHUNK_MICROS), 1);
        assert_eq!(chunk_of(-1), -1);
    }
}
