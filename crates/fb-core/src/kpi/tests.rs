// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use time::macros::datetime;

use super::*;
use crate::maintenance::reliability::Reliability;

const MINUTE: Duration = Duration::minutes(1);

fn t0() -> OffsetDateTime {
    datetime!(2026-11-02 06:00 UTC)
}

/// `n` minute buckets of a constant rate (units/h), from minute `first`.
fn minutes(first: i64, n: i64, rate: f64) -> Vec<RateBucket> {
    (first..first + n)
        .map(|i| RateBucket {
            start: t0() + MINUTE * i32::try_from(i).unwrap(),
            count: 6,
            sum: rate * 6.0,
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_textbook_example() {
    // 8 h shift, 30 min planned break: 450 min planned. 60 min down: 390 min run. Ideal rate
    // 60/h (1 min per unit); 300 units made, 15 rejects.
    // A = 390/450, P = 300 min / 390 min, Q = 285/300, OEE = 285 min / 450 min.
    let output = minutes(0, 390, 300.0 / 390.0 * 60.0);
    let scrap = minutes(0, 390, 15.0 / 390.0 * 60.0);
    let p = production(&output, Some(&scrap), MINUTE, Duration::minutes(450));
    assert_eq!(p.run, Duration::minutes(390));
    assert_eq!(p.downtime(), Duration::minutes(60));
    assert!(close(p.total, 300.0), "{}", p.total);
    let o = oee(&p, Some(60.0));
    assert!(close(o.availability.value().unwrap(), 390.0 / 450.0));
    assert!(close(o.performance.value().unwrap(), 300.0 / 390.0));
    assert!(close(o.quality.value().unwrap(), 285.0 / 300.0));
    assert!(close(o.oee.value().unwrap(), 285.0 / 450.0));
    let product = o.availability.value().unwrap()
        * o.performance.value().unwrap()
        * o.quality.value().unwrap();
    assert!(close(product, o.oee.value().unwrap()), "A × P × Q = OEE");
}

#[test]
fn minutes_without_output_or_at_zero_are_down() {
    // 60 planned minutes: 40 producing, 10 at rate zero, 10 with no reading at all.
    let mut output = minutes(0, 40, 50.0);
    output.extend(minutes(40, 10, 0.0));
    let p = production(&output, None, MINUTE, Duration::minutes(60));
    assert_eq!(p.run, Duration::minutes(40));
    assert_eq!(p.downtime(), Duration::minutes(20));
    let o = oee(&p, Some(50.0));
    assert!(close(o.availability.value().unwrap(), 40.0 / 60.0));
    assert!(close(o.performance.value().unwrap(), 1.0));
    assert_eq!(o.quality.reason(), Some("no scrap readings in the window"));
    assert_eq!(o.oee.reason(), Some("no scrap readings in the window"));
    assert_eq!(o.parts.oee, None);
}

#[test]
fn performance_above_the_ideal_is_capped() {
    // Running at 120/h on a type rated 100/h: the ideal is wrong, the machine gained no time.
    let p = production(
        &minutes(0, 60, 120.0),
        Some(&minutes(0, 60, 0.0)),
        MINUTE,
        Duration::HOUR,
    );
    let o = oee(&p, Some(100.0));
    assert_eq!(o.performance.value(), Some(1.0));
    assert_eq!(o.quality.value(), Some(1.0));
    assert_eq!(o.oee.value(), Some(1.0));
    assert!(o.oee.value().unwrap() <= 1.0);
}

#[test]
fn no_planned_time_zero_counts_and_no_ideal_rate_are_unknown_not_zero() {
    let none = production(&[], Some(&[]), MINUTE, Duration::ZERO);
    let o = oee(&none, Some(60.0));
    assert_eq!(
        o.availability.reason(),
        Some("no planned production time in the window")
    );
    assert_eq!(
        o.performance.reason(),
        Some("the machine did not run in the window")
    );
    assert_eq!(o.quality.reason(), Some("no scrap readings in the window"));
    assert!(o.oee.value().is_none());

    // Planned but nothing made: availability 0 is a fact; quality of nothing is not.
    let idle = production(
        &minutes(0, 60, 0.0),
        Some(&minutes(0, 60, 0.0)),
        MINUTE,
        Duration::HOUR,
    );
    let o = oee(&idle, Some(60.0));
    assert_eq!(o.availability.value(), Some(0.0));
    assert_eq!(
        o.quality.reason(),
        Some("nothing was produced in the window")
    );

    let unrated = production(&minutes(0, 60, 10.0), None, MINUTE, Duration::HOUR);
    let o = oee(&unrated, None);
    assert_eq!(o.availability.value(), Some(1.0));
    assert_eq!(
        o.performance.reason(),
        Some("no ideal rate is configured for this machine type")
    );
    assert_eq!(oee(&unrated, Some(0.0)).performance.value(), None);
}

#[test]
fn rejects_never_exceed_what_was_made_and_negative_rates_count_as_zero() {
    let p = production(
        &minutes(0, 10, 60.0),
        Some(&minutes(0, 10, 600.0)),
        MINUTE,
        Duration::minutes(10),
    );
    assert_eq!(oee(&p, Some(60.0)).quality.value(), Some(0.0));
    let p = production(&minutes(0, 10, -5.0), None, MINUTE, Duration::minutes(10));
    assert_eq!((p.run, p.total), (Duration::ZERO, 0.0));
    // Run time never exceeds planned time (buckets beyond it are the caller's mistake).
    let p = production(&minutes(0, 90, 60.0), None, MINUTE, Duration::HOUR);
    assert_eq!(p.run, Duration::HOUR);
}

#[test]
fn lines_weigh_machines_by_time_not_by_ratio() {
    // Machine a: 8 h planned, all running at the ideal rate, no scrap: OEE 1.
    // Machine b: 1 h planned, 30 min running at half the ideal rate: A 0.5, P 0.5, OEE 0.25.
    let a = oee(
        &production(
            &minutes(0, 480, 60.0),
            Some(&minutes(0, 480, 0.0)),
            MINUTE,
            Duration::hours(8),
        ),
        Some(60.0),
    );
    let b = oee(
        &production(
            &minutes(0, 30, 30.0),
            Some(&minutes(0, 30, 0.0)),
            MINUTE,
            Duration::HOUR,
        ),
        Some(60.0),
    );
    assert_eq!((a.oee.value(), b.oee.value()), (Some(1.0), Some(0.25)));
    let mut line = OeeTotals::default();
    line.add(&a.parts);
    line.add(&b.parts);
    let f = line.figures();
    // Fully productive time (480 + 15 min) over planned time (540 min), not (1 + 0.25) / 2.
    assert!(close(f.oee.value().unwrap(), 495.0 / 540.0));
    assert!(close(f.availability.value().unwrap(), 510.0 / 540.0));
    assert!(close(f.performance.value().unwrap(), 495.0 / 510.0));
    assert!(close(f.quality.value().unwrap(), 1.0));
    let product = f.availability.value().unwrap()
        * f.performance.value().unwrap()
        * f.quality.value().unwrap();
    assert!(close(product, f.oee.value().unwrap()));
    assert_eq!(line.machines(), (2, 2));
}

#[test]
fn machines_with_unknown_factors_leave_only_those_factors() {
    // c has availability from its tickets only: it counts in A, not in P, Q or OEE.
    let c = oee_from_run_time(Duration::hours(10), Duration::hours(9), "no output sensor");
    assert_eq!(c.availability.value(), Some(0.9));
    assert_eq!(c.performance.reason(), Some("no output sensor"));
    let mut line = OeeTotals::default();
    line.add(&c.parts);
    let f = line.figures();
    assert_eq!(f.availability.value(), Some(0.9));
    assert!(f.performance.value().is_none() && f.oee.value().is_none());
    assert_eq!(line.machines(), (1, 0));
    assert!(OeeTotals::default().figures().oee.value().is_none());
}

#[test]
fn the_window_starts_with_the_machine() {
    let (from, to) = (t0(), t0() + Duration::hours(8));
    assert_eq!(observed_window(from, to, None), (from, to));
    let later = from + Duration::hours(2);
    assert_eq!(observed_window(from, to, Some(later)), (later, to));
    assert_eq!(
        observed_window(from, to, Some(to + Duration::HOUR)),
        (to, to)
    );
}

fn reliability(operating_h: i64, failures: u64, mttr_h: Option<i64>, repairs: u64) -> Reliability {
    Reliability {
        from: t0(),
        to: t0(),
        observed: Duration::hours(operating_h),
        downtime: Duration::ZERO,
        operating: Duration::hours(operating_h),
        failures,
        repairs,
        unresolved: 0,
        mtbf: None,
        mttr: mttr_h.map(Duration::hours),
        availability: None,
    }
}

#[test]
fn mtbf_and_mttr_of_a_line_weigh_each_failure_and_repair() {
    let mut line = ReliabilityTotals::default();
    line.add(&reliability(90, 2, Some(5), 2));
    line.add(&reliability(100, 0, None, 0));
    line.add(&reliability(50, 1, Some(2), 1));
    // (90 + 100 + 50) h / 3 failures; (5 + 5 + 2) h / 3 repairs.
    assert_eq!(line.mtbf_hours().value(), Some(80.0));
    assert_eq!(line.mttr_hours().value(), Some(4.0));
    let calm = ReliabilityTotals::default();
    assert!(calm.mtbf_hours().reason().unwrap().contains("no failure"));
    assert!(calm.mttr_hours().reason().unwrap().contains("no repair"));
}

#[test]
fn health_is_the_mean_of_known_scores() {
    assert_eq!(
        mean_of([Some(80.0), None, Some(60.0)], "x").value(),
        Some(70.0)
    );
    assert_eq!(
        mean_of([None, None], "no health").reason(),
        Some("no health")
    );
}

#[test]
fn energy_savings_are_against_the_baseline_at_the_period_s_price_and_factor() {
    let (kwh, co2, cost) = energy_savings(80.0, 40.0, 16.0, Some(100.0));
    assert_eq!(kwh.value(), Some(20.0));
    assert_eq!(co2.value(), Some(10.0));
    assert_eq!(cost.value(), Some(4.0));
    let (kwh, co2, _) = energy_savings(80.0, 40.0, 16.0, None);
    assert!(kwh.reason().unwrap().contains("no baseline") && co2.value().is_none());
    let (kwh, co2, _) = energy_savings(0.0, 0.0, 0.0, Some(10.0));
    assert_eq!(kwh.value(), Some(10.0));
    assert!(co2.value().is_none());
}
