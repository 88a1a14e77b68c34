//! Small numeric helpers the detectors share.

/// Complementary error function, relative error below 1.2e-7 everywhere (the Chebyshev
/// fit published in Numerical Recipes, "erfcc"). Good enough for tail probabilities
/// down to 1e-300, which is where `exp` underflows anyway.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let tail = t * poly.exp();
    if x >= 0.0 { tail } else { 2.0 - tail }
}

/// Probability that a standard normal variable exceeds `z`.
pub fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The seeded PRNG the detectors' tests sample with (shared with `fb-predict`).
pub use fb_core::rng::SplitMix64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.0) - 0.158_655_25).abs() < 1e-7);
        assert!((normal_tail(3.0) - 1.349_898e-3).abs() < 1e-9);
        assert!((normal_tail(-2.0) - 0.977_249_87).abs() < 1e-7);
        let far = normal_tail(6.0);
        assert!((far / 9.865_876e-10 - 1.0).abs() < 1e-5);
    }
}
