//! The sample encoding of a segment's `data` column (see `migrations/0005_segments.sql`).

/// One sample: time (Unix microseconds) and value, 8 bytes each, little-endian.
pub(crate) const SAMPLE_BYTES: usize = 16;

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
    fn chunks_are_hours_floored() {
        assert_eq!(chunk_of(0), 0);
        assert_eq!(chunk_of(CHUNK_MICROS - 1), 0);
        assert_eq!(chunk_of(CHUNK_MICROS), 1);
        assert_eq!(chunk_of(-1), -1);
    }
}
