use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use fb_core::alerts::{Alert, AlertAction, AlertId, AlertKind, AlertStatus};
use fb_core::detection::{Anomaly, AnomalyKind, DetectorKind, Evidence, Severity};
use fb_core::identity::SiteScope;
use fb_core::plant::{MachineId, ScoreBatch, ScoreSample, SensorKey};
use fb_core::ports::{AlertFilter, AnomalyFilter, RangeQuery, Storage, StoreError};

use crate::fixtures::{self, alert};

fn base() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() - Duration::days(1);
    now.replace_time(time::Time::from_hms(10, 0, 0).unwrap_or(time::Time::MIDNIGHT))
}

pub async fn alerts_round_trip_and_update_by_version(storage: &Storage) {
    let store = &storage.alerts;
    let mut a = alert("m1", AlertKind::Overheating, Severity::Warning);
    store.insert_alert(&a).await.unwrap();
    assert_eq!(store.alert(a.id).await.unwrap(), Some(a.clone()));

    a.status = AlertStatus::Acknowledged;
    a.acknowledged = Some(AlertAction {
        by: "user:olga".into(),
        at: base() + Duration::minutes(2),
        comment: Some("on my way".into()),
    });
    a.escalation_level = 1;
    a.escalated_at = Some(base() + Duration::minutes(1));
    a.version = 2;
    assert!(store.update_alert(&a, 1).await.unwrap());
    assert_eq!(store.alert(a.id).await.unwrap(), Some(a.clone()));
    // A writer that read version 1 does not overwrite version 2.
    let mut stale = a.clone();
    stale.title = "stale".into();
    stale.version = 2;
    assert!(!store.update_alert(&stale, 1).await.unwrap());
    assert_eq!(store.alert(a.id).await.unwrap().unwrap().title, a.title);
    assert_eq!(store.alert(AlertId(Uuid::now_v7())).await.unwrap(), None);
}

pub async fn one_active_alert_per_machine_and_kind(storage: &Storage) {
    let store = &storage.alerts;
    let mut first = alert("m2", AlertKind::Vibration, Severity::Critical);
    store.insert_alert(&first).await.unwrap();
    let second = alert("m2", AlertKind::Vibration, Severity::Warning);
    assert!(matches!(
        store.insert_alert(&second).await,
        Err(StoreError::Conflict {
            constraint: "alert_active"
        })
    ));
    // Another kind, or the same kind once the first is resolved, is fine.
    store
        .insert_alert(&alert("m2", AlertKind::Pressure, Severity::Warning))
        .await
        .unwrap();
    first.status = AlertStatus::Resolved;
    first.resolved = Some(AlertAction {
        by: "system".into(),
        at: base() + Duration::minutes(10),
        comment: None,
    });
    first.version = 2;
    assert!(store.update_alert(&first, 1).await.unwrap());
    store.insert_alert(&second).await.unwrap();
}

pub async fn alerts_are_listed_newest_first_with_filters(storage: &Storage) {
    let store = &storage.alerts;
    let mut made = Vec::new();
    for (machine, kind, severity) in [
        ("m3", AlertKind::Overheating, Severity::Warning),
        ("m3", AlertKind::Vibration, Severity::Critical),
        ("m4", AlertKind::Overheating, Severity::Critical),
        ("m4", AlertKind::NoData, Severity::Warning),
    ] {
        let a = alert(machine, kind, severity);
        store.insert_alert(&a).await.unwrap();
        made.push(a);
    }
    let mut resolved = made[0].clone();
    resolved.status = AlertStatus::Resolved;
    resolved.version = 2;
    assert!(store.update_alert(&resolved, 1).await.unwrap());

    let ids = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let all = AlertFilter::new(SiteScope::All, 100);
    assert_eq!(
        ids(store.list_alerts(&all).await.unwrap()),
        made.iter().rev().map(|a| a.id).collect::<Vec<_>>()
    );
    let m3 = AlertFilter {
        machine: Some(MachineId("m3".into())),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_alerts(&m3).await.unwrap()),
        [made[1].id, made[0].id]
    );
    let active_m3 = AlertFilter {
        active_only: true,
        ..m3.clone()
    };
    assert_eq!(
        ids(store.list_alerts(&active_m3).await.unwrap()),
        [made[1].id]
    );
    let resolved_only = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_alerts(&resolved_only).await.unwrap()),
        [made[0].id]
    );
    let critical = AlertFilter {
        severity: Some(Severity::Critical),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_alerts(&critical).await.unwrap()),
        [made[2].id, made[1].id]
    );
    let overheating = AlertFilter {
        kind: Some(AlertKind::Overheating),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_alerts(&overheating).await.unwrap()),
        [made[2].id, made[0].id]
    );
    let page = AlertFilter {
        before: Some(made[2].id),
        limit: 1,
        ..all
    };
    assert_eq!(ids(store.list_alerts(&page).await.unwrap()), [made[1].id]);
}

pub async fn alerts_are_listed_by_the_sites_of_their_machines(storage: &Storage) {
    let (machines, store) = (&storage.machines, &storage.alerts);
    for (id, site) in [
        ("north-1", "north"),
        ("south-1", "south"),
        ("quote-1", "o'hara; --"),
    ] {
        let mut m = fixtures::machine(id);
        m.location.site = site.into();
        machines.insert_machine(&m).await.unwrap();
    }
    let mut made = Vec::new();
    for (machine, kind) in [
        ("north-1", AlertKind::NoData),
        ("south-1", AlertKind::NoData),
        ("north-1", AlertKind::Overheating),
        ("quote-1", AlertKind::NoData),
        ("deleted-1", AlertKind::NoData),
    ] {
        let a = alert(machine, kind, Severity::Warning);
        store.insert_alert(&a).await.unwrap();
        made.push(a.id);
    }
    let listed = |sites: SiteScope, limit: usize| {
        let filter = AlertFilter::new(sites, limit);
        async move {
            store
                .list_alerts(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    let named = |names: &[&str]| SiteScope::named("sites", names).unwrap();
    assert_eq!(listed(named(&["north"]), 100).await, [made[2], made[0]]);
    // The limit counts visible alerts only: the newest alerts (of other sites) do not use it up.
    assert_eq!(listed(named(&["north"]), 1).await, [made[2]]);
    assert_eq!(
        listed(named(&["north", "south"]), 100).await,
        [made[2], made[1], made[0]]
    );
    // Site names are bound, never spliced into the SQL.
    assert_eq!(listed(named(&["o'hara; --"]), 100).await, [made[3]]);
    assert!(listed(named(&["east"]), 100).await.is_empty());
    assert!(
        listed(SiteScope::Sites(Default::default()), 100)
            .await
            .is_empty()
    );
    // Every site also reaches the alert of a machine deleted since.
    let mut everything = made.clone();
    everything.reverse();
    assert_eq!(listed(SiteScope::All, 100).await, everything);
}

pub async fn anomalies_round_trip_in_time_order(storage: &Storage) {
    let store = &storage.anomalies;
    let t = base();
    let anomaly = |secs: i64, sensor: Option<&str>, kind| Anomaly {
        id: Uuid::now_v7(),
        machine: MachineId("m5".into()),
        sensor: sensor.map(|s| SensorKey(s.into())),
        kind,
        detector: DetectorKind::Statistical,
        severity: Severity::Warning,
        at: t + Duration::seconds(secs) + Duration::microseconds(7),
        score: 0.75,
        evidence: vec![Evidence::number("z", 6.5), Evidence::text("unit", "°C")],
    };
    let later = anomaly(30, Some("temperature"), AnomalyKind::Overheating);
    let earlier = anomaly(10, None, AnomalyKind::Vibration);
    let outside = anomaly(7200, Some("flow"), AnomalyKind::Flow);
    store
        .insert_anomalies(&[later.clone(), earlier.clone(), outside])
        .await
        .unwrap();
    store.insert_anomalies(&[]).await.unwrap();
    let filter = AnomalyFilter {
        machine: MachineId("m5".into()),
        from: t,
        to: t + Duration::hours(1),
        after: None,
        limit: 10,
    };
    assert_eq!(
        store.list_anomalies(&filter).await.unwrap(),
        [earlier.clone(), later]
    );
    let other = AnomalyFilter {
        machine: MachineId("nobody".into()),
        ..filter.clone()
    };
    assert!(store.list_anomalies(&other).await.unwrap().is_empty());
    let one = AnomalyFilter { limit: 1, ..filter };
    assert_eq!(store.list_anomalies(&one).await.unwrap(), [earlier]);
}

pub async fn scores_round_trip_and_the_first_score_stays(storage: &Storage) {
    let store = &storage.scores;
    let t = base();
    let micros = |secs: i64| fb_core::plant::to_micros(t + Duration::seconds(secs));
    let batch = |values: &[(&str, i64, f32, bool)]| {
        let mut b = ScoreBatch::default();
        let mut named: Vec<(String, fb_core::plant::SeriesIdx)> = Vec::new();
        for &(sensor, secs, score, anomaly) in values {
            let series = match named.iter().find(|(s, _)| s == sensor) {
                Some((_, idx)) => *idx,
                None => {
                    let idx = b.add_series(MachineId("m6".into()), SensorKey(sensor.into()));
                    named.push((sensor.to_owned(), idx));
                    idx
                }
            };
            b.push_sample(ScoreSample {
                series,
                ts_micros: micros(secs),
                score,
                anomaly,
            });
        }
        b
    };
    store
        .append_scores(&batch(&[
            ("t", 0, 0.1, false),
            ("t", 2, 0.9, true),
            ("v", 1, 0.5, false),
        ]))
        .await
        .unwrap();
    store
        .append_scores(&batch(&[("t", 1, 0.2, false), ("t", 2, 0.0, false)]))
        .await
        .unwrap();
    let q = RangeQuery {
        machine: MachineId("m6".into()),
        sensor: None,
        from: t,
        to: t + Duration::seconds(2),
        limit: 100,
    };
    let seen: Vec<(String, i64, f32, bool)> = store
        .scores(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.sensor.0, (p.ts - t).whole_seconds(), p.score, p.anomaly))
        .collect();
    assert_eq!(
        seen,
        [
            ("t".to_owned(), 0, 0.1, false),
            ("t".to_owned(), 1, 0.2, false),
            ("v".to_owned(), 1, 0.5, false)
        ],
        "half-open range, ordered by sensor then time"
    );
    let at_two = RangeQuery {
        sensor: Some(SensorKey("t".into())),
        from: t + Duration::seconds(2),
        to: t + Duration::seconds(3),
        ..q
    };
    let points = store.scores(&at_two).await.unwrap();
    assert_eq!(
        points
            .iter()
            .map(|p| (p.score, p.anomaly))
            .collect::<Vec<_>>(),
        [(0.9, true)],
        "the first score of a reading stays"
    );
}

pub async fn machine_health_is_set_alone(storage: &Storage) {
    let store = &storage.machines;
    let machine = fixtures::machine("m7");
    store.insert_machine(&machine).await.unwrap();
    let at = base() + Duration::microseconds(5);
    assert!(
        store
            .set_machine_health(&machine.id, 63.5, at)
            .await
            .unwrap()
    );
    let stored = store.machine(&machine.id).await.unwrap().unwrap();
    assert_eq!(stored.health_score, Some(63.5));
    assert_eq!(stored.updated_at, at);
    assert_eq!(stored.name, machine.name);
    assert_eq!(stored.sensors, machine.sensors);
    assert!(
        !store
            .set_machine_health(&MachineId("nobody".into()), 1.0, at)
            .await
            .unwrap()
    );
}

pub async fn machine_prediction_is_set_alone(storage: &Storage) {
    let store = &storage.machines;
    let machine = fixtures::machine("m8");
    store.insert_machine(&machine).await.unwrap();
    let at = base() + Duration::microseconds(7);
    assert!(
        store
            .set_machine_prediction(&machine.id, Some(0.83), Some(12.5), at)
            .await
            .unwrap()
    );
    let stored = store.machine(&machine.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.failure_probability,
            stored.rul_hours,
            stored.updated_at
        ),
        (Some(0.83), Some(12.5), at)
    );
    assert_eq!(
        (stored.name, stored.sensors, stored.health_score),
        (
            machine.name.clone(),
            machine.sensors.clone(),
            machine.health_score
        )
    );
    // No model of a kind: that figure is cleared.
    store
        .set_machine_prediction(&machine.id, None, Some(3.0), at)
        .await
        .unwrap();
    let stored = store.machine(&machine.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.failure_probability, stored.rul_hours),
        (None, Some(3.0))
    );
    assert!(
        !store
            .set_machine_prediction(&MachineId("nobody".into()), Some(0.1), None, at)
            .await
            .unwrap()
    );
}
