use time::macros::datetime;
use time::{Duration, OffsetDateTime, Weekday};

use super::*;
use crate::plant::MachineId;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn at(min: i64) -> OffsetDateTime {
    datetime!(2026-12-02 10:00 UTC) + Duration::minutes(min)
}

#[test]
fn trapezoid_integrates_kw_over_hours() {
    // 10 kW rising to 20 kW over 30 minutes, then flat 20 kW for 30 minutes: 7.5 + 10 kWh.
    let points = [
        PowerPoint {
            at: at(0),
            kw: 10.0,
        },
        PowerPoint {
            at: at(30),
            kw: 20.0,
        },
        PowerPoint {
            at: at(60),
            kw: 20.0,
        },
    ];
    let i = integrate_points(&points, Duration::minutes(30));
    assert!(close(i.kwh, 17.5), "{}", i.kwh);
    assert_eq!(i.covered, Duration::hours(1));
    assert_eq!(i.gaps, 0);
}

#[test]
fn points_out_of_order_are_sorted_and_a_long_gap_is_not_integrated() {
    let points = [
        PowerPoint {
            at: at(120),
            kw: 10.0,
        },
        PowerPoint {
            at: at(0),
            kw: 10.0,
        },
        PowerPoint {
            at: at(6),
            kw: 10.0,
        },
        // 114 minutes without readings: more than the 10-minute bound.
    ];
    let i = integrate_points(&points, Duration::minutes(10));
    assert!(close(i.kwh, 1.0), "{}", i.kwh);
    assert_eq!(i.gaps, 1);
    assert_eq!(i.covered, Duration::minutes(6));
}

#[test]
fn buckets_integrate_mean_times_length_and_empty_ones_add_nothing() {
    let buckets = [
        PowerBucket {
            start: at(0),
            count: 4,
            sum: 48.0,
        }, // 12 kW
        PowerBucket {
            start: at(1),
            count: 0,
            sum: 0.0,
        }, // no data
        PowerBucket {
            start: at(2),
            count: 2,
            sum: 12.0,
        }, // 6 kW
    ];
    let i = integrate_buckets(&buckets, Duration::minutes(1));
    assert!(close(i.kwh, 18.0 / 60.0), "{}", i.kwh);
    assert_eq!(i.covered, Duration::minutes(2));
}

#[test]
fn co2_uses_the_site_factor_or_the_default() {
    let mut f = EmissionFactors::default();
    f.sites.insert("plant-b".into(), 0.2);
    assert!(close(f.co2_kg("plant-a", 100.0), 50.0));
    assert!(close(f.co2_kg("plant-b", 100.0), 20.0));
}

#[test]
fn baseline_is_the_mean_of_shifted_periods_with_data_and_reduction_follows() {
    let p = baseline_periods(at(0), at(60), 3);
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0],
        (at(0) - Duration::days(1), at(60) - Duration::days(1))
    );
    assert_eq!(p[2].0, at(0) - Duration::days(3));
    let b = baseline_kwh(&[Some(100.0), None, Some(80.0)]);
    assert_eq!(b, Some(90.0));
    assert!(close(reduction_pct(b, 72.0).unwrap(), 20.0));
    assert!(close(reduction_pct(b, 99.0).unwrap(), -10.0));
    assert_eq!(reduction_pct(baseline_kwh(&[None, None]), 5.0), None);
    assert_eq!(reduction_pct(Some(0.0), 5.0), None);
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[]), None);
}

fn tod(s: &str) -> TimeOfDay {
    TimeOfDay::parse(s).unwrap()
}

fn tariff() -> Tariff {
    Tariff {
        off_peak_price: 0.10,
        windows: vec![
            TariffWindow {
                name: "peak".into(),
                peak: true,
                days: vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
                start: tod("08:00"),
                end: tod("20:00"),
                price_per_kwh: 0.30,
            },
            TariffWindow {
                name: "night".into(),
                peak: false,
                days: vec![Weekday::Friday],
                start: tod("22:00"),
                end: tod("06:00"),
                price_per_kwh: 0.05,
            },
        ],
    }
}

#[test]
fn time_of_day_parses_hh_mm_only() {
    assert_eq!(tod("00:00").minutes(), 0);
    assert_eq!(tod("23:59").minutes(), 1439);
    assert_eq!(tod("24:00").minutes(), 1440);
    for bad in ["24:01", "7:00", "07:60", "0700", "ab:cd", ""] {
        assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
    }
}

#[test]
fn tariff_windows_by_weekday_and_time_and_across_midnight() {
    let t = tariff();
    // Wednesday 2026-12-02.
    assert!(t.is_peak(datetime!(2026-12-02 08:00 UTC)));
    assert!(t.is_peak(datetime!(2026-12-02 19:59 UTC)));
    assert!(!t.is_peak(datetime!(2026-12-02 20:00 UTC)));
    assert!(close(t.price_at(datetime!(2026-12-02 07:59 UTC)), 0.10));
    // Saturday: no peak.
    assert!(!t.is_peak(datetime!(2026-12-05 12:00 UTC)));
    // Friday 22:00 to Saturday 06:00 is the night window; Thursday night is not.
    assert!(close(t.price_at(datetime!(2026-12-04 23:00 UTC)), 0.05));
    assert!(close(t.price_at(datetime!(2026-12-05 03:00 UTC)), 0.05));
    assert!(close(t.price_at(datetime!(2026-12-05 06:00 UTC)), 0.10));
    assert!(close(t.price_at(datetime!(2026-12-04 03:00 UTC)), 0.10));
    assert!(close(t.lowest_price(), 0.05));
    // Cost per bucket at its start's price: 2 kWh at peak + 2 kWh off-peak.
    let cost = t.cost([
        (datetime!(2026-12-02 12:00 UTC), 2.0),
        (datetime!(2026-12-02 21:00 UTC), 2.0),
    ]);
    assert!(close(cost, 0.8), "{cost}");
}

#[test]
fn tariff_validation_names_the_field() {
    let mut t = tariff();
    t.windows[1].price_per_kwh = -1.0;
    t.windows[0].end = t.windows[0].start;
    let fields: Vec<String> = t
        .validate("energy.tariff")
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "energy.tariff.windows[0].end",
            "energy.tariff.windows[1].price_per_kwh"
        ]
    );
}

fn rules() -> RecommendRules {
    RecommendRules {
        idle_max_kw: 2.0,
        idle_min_minutes: 15,
        standby_kw: 0.5,
        horizon: Duration::hours(1),
        efficiency_margin: 0.2,
        non_critical_types: vec!["compressor".into()],
    }
}

fn m(id: &str) -> MachineId {
    MachineId(id.into())
}

#[test]
fn standby_for_a_running_machine_idle_for_long_enough() {
    let peak = datetime!(2026-12-02 12:00 UTC);
    let s = IdleSample {
        machine: m("m1"),
        site: "plant-a".into(),
        running: true,
        minute_means_kw: vec![1.5; 15],
    };
    let p = standby(&s, &rules(), &tariff(), &EmissionFactors::default(), peak).unwrap();
    assert_eq!(p.action, EnergyAction::Standby);
    assert!(close(p.expected_kwh_saved, 1.0)); // (1.5 − 0.5) kW × 1 h
    assert!(close(p.expected_cost_saved, 0.30));
    assert!(close(p.expected_co2_kg_saved, 0.5));
    assert!(p.reason.contains("idle"), "{}", p.reason);

    // Too short, one busy minute, not running, or already at standby level: nothing.
    let short = IdleSample {
        minute_means_kw: vec![1.5; 14],
        ..s.clone()
    };
    assert!(
        standby(
            &short,
            &rules(),
            &tariff(),
            &EmissionFactors::default(),
            peak
        )
        .is_none()
    );
    let mut busy = s.clone();
    busy.minute_means_kw[10] = 8.0;
    assert!(
        standby(
            &busy,
            &rules(),
            &tariff(),
            &EmissionFactors::default(),
            peak
        )
        .is_none()
    );
    let stopped = IdleSample {
        running: false,
        ..s.clone()
    };
    assert!(
        standby(
            &stopped,
            &rules(),
            &tariff(),
            &EmissionFactors::default(),
            peak
        )
        .is_none()
    );
    let asleep = IdleSample {
        minute_means_kw: vec![0.4; 15],
        ..s
    };
    assert!(
        standby(
            &asleep,
            &rules(),
            &tariff(),
            &EmissionFactors::default(),
            peak
        )
        .is_none()
    );
}

fn eff(id: &str, ty: &str, kw: f64, flow: f64) -> EfficiencySample {
    EfficiencySample {
        machine: m(id),
        site: "plant-a".into(),
        machine_type: ty.into(),
        mean_kw: kw,
        mean_flow: flow,
    }
}

#[test]
fn load_reduction_for_machines_well_above_their_fleets_median() {
    let now = datetime!(2026-12-02 21:00 UTC);
    let samples = [
        eff("p1", "pump", 10.0, 100.0),      // 0.10 kWh/unit
        eff("p2", "pump", 11.0, 100.0),      // 0.11: the median
        eff("p3", "pump", 20.0, 100.0),      // 0.20: 82 % above
        eff("p4", "pump", 12.0, 100.0),      // 0.12: 9 % above (even count: median 0.115)
        eff("c1", "compressor", 50.0, 10.0), // a fleet of two: not judged
        eff("c2", "compressor", 90.0, 10.0),
        eff("x1", "pump", 5.0, 0.0), // no output: left out
    ];
    let out = load_reductions(
        &samples,
        &rules(),
        &tariff(),
        &EmissionFactors::default(),
        now,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let p = &out[0];
    assert_eq!(p.machine, m("p3"));
    assert_eq!(p.action, EnergyAction::LoadReduction);
    // median 0.115 kWh/unit × 100 units/h = 11.5 kW; 20 − 11.5 = 8.5 kWh over 1 h.
    assert!(close(p.expected_kwh_saved, 8.5), "{}", p.expected_kwh_saved);
    assert!(close(p.expected_cost_saved, 0.85));
    assert!(close(p.expected_co2_kg_saved, 4.25));
}

#[test]
fn off_peak_only_for_non_critical_machines_drawing_in_a_peak_window() {
    let peak = datetime!(2026-12-02 12:00 UTC);
    let s = PeakSample {
        machine: m("c1"),
        site: "plant-a".into(),
        machine_type: "compressor".into(),
        mean_kw: 10.0,
    };
    let p = shift_off_peak(&s, &rules(), &tariff(), peak).unwrap();
    assert_eq!(p.action, EnergyAction::ShiftOffPeak);
    assert!(close(p.expected_kwh_saved, 0.0));
    assert!(close(p.expected_co2_kg_saved, 0.0));
    // 10 kWh × (0.30 − 0.05).
    assert!(
        close(p.expected_cost_saved, 2.5),
        "{}",
        p.expected_cost_saved
    );
    assert!(shift_off_peak(&s, &rules(), &tariff(), datetime!(2026-12-02 21:00 UTC)).is_none());
    let critical = PeakSample {
        machine_type: "press".into(),
        ..s.clone()
    };
    assert!(shift_off_peak(&critical, &rules(), &tariff(), peak).is_none());
    let idle = PeakSample { mean_kw: 1.0, ..s };
    assert!(shift_off_peak(&idle, &rules(), &tariff(), peak).is_none());
}
