use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use fb_core::alerts::{AlertId, AlertKind};
use fb_core::detection::{AnomalyKind, DetectorKind, Severity};
use fb_core::energy::{EmissionFactors, RecommendRules, Tariff};
use fb_core::events::{
    AlertEvent, AnomalyEvent, Directive as Kind, EnergyAction, EnergyRecommendationEvent, Envelope,
    Event, SubjectFilter, TicketEvent, TicketPriority, TicketStatus,
};
use fb_core::identity::{Role, SiteScope};
use fb_core::maintenance::{FailureType, Transition};
use fb_core::plant::{MachineId, Reading, ReadingBatch, SensorKind};
use fb_core::ports::{ConsumerName, ConsumerSpec, DecisionFilter, Storage};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use fb_testkit::fixtures;

use super::*;
use crate::bus::InProcessBus;
use crate::{audit, energy, gates};

struct Fixture {
    service: Service,
    storage: Storage,
    clock: Arc<FakeClock>,
    bus: Arc<dyn EventBus>,
    sensitivity: Arc<Sensitivity>,
    gates: Arc<gates::Service>,
    energy: Arc<energy::Service>,
}

fn energy_config() -> energy::Config {
    energy::Config {
        factors: EmissionFactors::default(),
        tariff: Tariff {
            off_peak_price: 0.20,
            windows: Vec::new(),
        },
        rules: RecommendRules {
            idle_max_kw: 2.0,
            idle_min_minutes: 15,
            standby_kw: 0.5,
            horizon: Duration::hours(1),
            efficiency_margin: 0.2,
            non_critical_types: Vec::new(),
        },
        baseline_days: 1,
        lookback: Duration::minutes(60),
        expire_after: Duration::minutes(30),
    }
}

fn config() -> Config {
    Config {
        ideal_rates: [("hydraulic_press".to_owned(), 60.0)].into(),
        ..Config::default()
    }
}

/// press-01 and press-02 on plant-a line-1 (output, scrap, power), pump-01 on plant-a line-2
/// (no output sensor), press-09 on plant-b.
async fn fixture() -> Fixture {
    let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
    let clock = Arc::new(FakeClock::new());
    for (id, site, line, counts) in [
        ("press-01", "plant-a", "line-1", true),
        ("press-02", "plant-a", "line-1", true),
        ("pump-01", "plant-a", "line-2", false),
        ("press-09", "plant-b", "line-1", true),
    ] {
        let mut m = fixtures::machine(id);
        m.location.site = site.into();
        m.location.line = Some(line.into());
        m.created_at = clock.now_for_tests() - Duration::days(400);
        m.sensors.push(fixtures::sensor(
            "power",
            SensorKind::Power,
            "kW",
            0.0,
            500.0,
        ));
        if counts {
            for key in ["output", "scrap"] {
                m.sensors.push(fixtures::sensor(
                    key,
                    SensorKind::Other,
                    "units/h",
                    0.0,
                    1000.0,
                ));
            }
        } else {
            m.machine_type = "pump".into();
        }
        storage.machines.insert_machine(&m).await.unwrap();
    }
    let audit = Arc::new(audit::Service::new(storage.audit.clone(), clock.clone()));
    let energy = Arc::new(energy::Service::new(
        storage.machines.clone(),
        storage.readings.clone(),
        storage.recommendations.clone(),
        audit.clone(),
        clock.clone(),
        energy_config(),
    ));
    let gates = Arc::new(gates::Service::new(
        storage.approvals.clone(),
        storage.decisions.clone(),
        fb_core::gates::Gates::default(),
        audit,
        clock.clone(),
    ));
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(100));
    gates.attach_bus(bus.clone());
    let sensitivity = Arc::new(Sensitivity::new());
    let service = service(&storage, &clock, &energy, &gates, &sensitivity);
    assert!(service.attach_bus(bus.clone()));
    Fixture {
        service,
        storage,
        clock,
        bus,
        sensitivity,
        gates,
        energy,
    }
}

fn service(
    storage: &Storage,
    clock: &Arc<FakeClock>,
    energy: &Arc<energy::Service>,
    gates: &Arc<gates::Service>,
    sensitivity: &Arc<Sensitivity>,
) -> Service {
    Service::new(
        storage.machines.clone(),
        storage.readings.clone(),
        storage.tickets.clone(),
        energy.clone(),
        gates.clone(),
        sensitivity.clone(),
        clock.clone(),
        config(),
    )
}

/// One reading a minute of `sensor` at `value`, over minutes `[first, first + n)` after `from`.
async fn series(
    f: &Fixture,
    machine: &str,
    sensor: &str,
    from: OffsetDateTime,
    first: i64,
    n: i64,
    value: f64,
) {
    let readings: Vec<Reading> = (first..first + n)
        .map(|i| Reading {
            machine: MachineId(machine.into()),
            sensor: SensorKey(sensor.into()),
            ts: from + Duration::minutes(i) + Duration::seconds(30),
            value,
        })
        .collect();
    f.storage
        .readings
        .append_readings(&ReadingBatch::from_readings(&readings))
        .await
        .unwrap();
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

fn find<'a>(r: &'a Report, machine: &str) -> &'a MachineKpis {
    r.machines.iter().find(|m| m.machine == machine).unwrap()
}

#[tokio::test]
async fn kpis_per_machine_line_and_site_by_the_standard_definitions() {
    let f = fixture().await;
    let now = f.clock.now_for_tests();
    let from = now - Duration::hours(8);
    // press-01: eight hours at the ideal 60/h, no scrap, 10 kW.
    series(&f, "press-01", "output", from, 0, 480, 60.0).await;
    series(&f, "press-01", "scrap", from, 0, 480, 0.0).await;
    series(&f, "press-01", "power", from, 0, 480, 10.0).await;
    // press-02: four hours at half speed with 10 % scrap, then silent (down).
    series(&f, "press-02", "output", from, 0, 240, 30.0).await;
    series(&f, "press-02", "scrap", from, 0, 240, 3.0).await;
    // pump-01 (no output sensor): one failure, reported 6 h ago, repaired 2 h later.
    let mut ticket = fixtures::ticket("pump-01", "plant-a", FailureType::Bearing);
    ticket.created_at = now - Duration::hours(6);
    ticket
        .transition(
            Transition::Start,
            "user:otto",
            now - Duration::hours(6),
            None,
        )
        .unwrap();
    ticket
        .transition(
            Transition::Resolve,
            "user:otto",
            now - Duration::hours(4),
            None,
        )
        .unwrap();
    f.storage.tickets.insert_ticket(&ticket).await.unwrap();

    let caller = fixtures::principal(Role::Viewer);
    let q = KpiQuery {
        site: Some("plant-a".into()),
        line: None,
        // Into the future: planned time ends now.
        from,
        to: now + Duration::hours(4),
    };
    let r = f.service.kpis(&caller, q).await.unwrap();
    assert_eq!(r.to, now);
    assert_eq!(r.machines.len(), 3, "plant-b is not asked for");

    let p1 = &find(&r, "press-01").kpis;
    assert_eq!(find(&r, "press-01").run_time_source, RunTimeSource::Output);
    for k in [&p1.availability, &p1.performance, &p1.quality, &p1.oee] {
        assert!(close(k.value(), 1.0), "{k:?}");
    }
    assert!(close(p1.downtime_hours.value(), 0.0));
    assert!(close(p1.energy_kwh.value(), 80.0));
    assert!(close(p1.co2_kg.value(), 40.0), "{:?}", p1.co2_kg);
    assert!(close(p1.energy_cost.value(), 16.0));
    assert!(
        p1.energy_saved_kwh.reason().unwrap().contains("baseline"),
        "{:?}",
        p1.energy_saved_kwh
    );
    assert!(close(p1.health.value(), 93.5));
    assert!(p1.mtbf_hours.reason().unwrap().contains("no failure"));

    let p2 = &find(&r, "press-02").kpis;
    assert!(close(p2.availability.value(), 0.5));
    assert!(close(p2.performance.value(), 0.5));
    assert!(close(p2.quality.value(), 0.9));
    assert!(close(p2.oee.value(), 0.225));
    assert!(close(p2.downtime_hours.value(), 4.0));
    assert!(
        close(p2.energy_kwh.value(), 0.0),
        "a power sensor without data: 0 kWh"
    );

    let pump = find(&r, "pump-01");
    assert_eq!(pump.run_time_source, RunTimeSource::Tickets);
    assert!(close(pump.kpis.availability.value(), 0.75));
    assert!(
        pump.kpis
            .performance
            .reason()
            .unwrap()
            .contains("no output sensor")
    );
    assert!(close(pump.kpis.downtime_hours.value(), 2.0));
    assert!(close(pump.kpis.mtbf_hours.value(), 6.0));
    assert!(close(pump.kpis.mttr_hours.value(), 2.0));

    // Line 1: time-weighted, not the mean of 1 and 0.225.
    let line1 = r.lines.iter().find(|l| l.line == "line-1").unwrap();
    assert_eq!((line1.site.as_str(), line1.machines), ("plant-a", 2));
    assert!(close(line1.kpis.availability.value(), 720.0 / 960.0));
    assert!(close(line1.kpis.performance.value(), 600.0 / 720.0));
    assert!(close(line1.kpis.quality.value(), 588.0 / 600.0));
    assert!(close(line1.kpis.oee.value(), 588.0 / 960.0));
    assert!(close(line1.kpis.downtime_hours.value(), 4.0));

    let site = &r.sites[0];
    assert_eq!((site.site.as_str(), site.machines), ("plant-a", 3));
    // Availability counts pump-01's ticket-based run time; OEE only the machines with all three.
    assert!(close(
        site.kpis.availability.value(),
        (720.0 + 360.0) / (960.0 + 480.0)
    ));
    assert!(close(site.kpis.oee.value(), 588.0 / 960.0));
    assert!(close(site.kpis.mtbf_hours.value(), (8.0 + 8.0 + 6.0) / 1.0));
    assert!(close(site.kpis.energy_kwh.value(), 80.0));
    assert!(
        site.procurement_savings
            .as_ref()
            .unwrap_err()
            .contains("no savings ledger")
    );

    // One line only.
    let only = f
        .service
        .kpis(
            &caller,
            KpiQuery {
                site: None,
                line: Some("line-2".into()),
                from,
                to: now,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = only.machines.iter().map(|m| m.machine.as_str()).collect();
    assert_eq!(ids, ["pump-01"]);
}

struct Ledger;

#[async_trait]
impl SavingsLedger for Ledger {
    async fn savings_minor(
        &self,
        sites: &SiteScope,
        _from: OffsetDateTime,
        _to: OffsetDateTime,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        assert!(sites.contains("plant-a") && !sites.contains("plant-b"));
        Ok(vec![
            ("plant-a".into(), "USD".into(), 500),
            ("plant-a".into(), "EUR".into(), 12_345),
        ])
    }
}

#[tokio::test]
async fn procurement_savings_come_from_the_ledger_per_site_and_currency() {
    let f = fixture().await;
    assert!(f.service.set_ledger(Arc::new(Ledger)));
    let now = f.clock.now_for_tests();
    let mut caller = fixtures::principal(Role::Viewer);
    caller.sites = SiteScope::Sites(["plant-a".to_owned()].into());
    let r = f
        .service
        .kpis(
            &caller,
            KpiQuery {
                site: None,
                line: None,
                from: now - Duration::hours(1),
                to: now,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.sites.len(), 1);
    assert_eq!(
        r.sites[0].procurement_savings,
        Ok(vec![
            Money {
                currency: "EUR".into(),
                minor: 12_345
            },
            Money {
                currency: "USD".into(),
                minor: 500
            },
        ])
    );
}

#[tokio::test]
async fn reports_are_refused_naming_the_field_and_outside_the_caller_s_sites() {
    let f = fixture().await;
    let now = f.clock.now_for_tests();
    let mut caller = fixtures::principal(Role::Viewer);
    let q = |site: Option<&str>, from: OffsetDateTime, to: OffsetDateTime| KpiQuery {
        site: site.map(str::to_owned),
        line: None,
        from,
        to,
    };
    let e = f
        .service
        .kpis(&caller, q(None, now, now))
        .await
        .unwrap_err();
    assert_eq!(e.field_errors()[0].field, "to");
    let e = f
        .service
        .kpis(&caller, q(None, now - Duration::days(40), now))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::invalid_field);
    caller.sites = SiteScope::Sites(["plant-b".to_owned()].into());
    let e = f
        .service
        .kpis(&caller, q(Some("plant-a"), now - Duration::HOUR, now))
        .await
        .unwrap_err();
    assert_eq!(e.field_errors()[0].field, "site");
    let r = f
        .service
        .kpis(&caller, q(None, now - Duration::HOUR, now))
        .await
        .unwrap();
    assert!(r.machines.iter().all(|m| m.site == "plant-b"));
}

fn alert_opened(f: &Fixture, kind: AlertKind, severity: Severity) -> Envelope {
    let mut alert = fixtures::alert("press-01", kind, severity);
    alert.title = format!("{kind:?}");
    Envelope::new(
        "alerts",
        Some("plant-a"),
        f.clock.now_for_tests(),
        Event::AlertOpened(AlertEvent::from(&alert)),
    )
}

#[tokio::test]
async fn a_critical_alert_increases_monitoring_once_per_event() {
    let f = fixture().await;
    let mut events = f
        .bus
        .consumer(&ConsumerSpec {
            name: ConsumerName::parse("name", "test").unwrap(),
            filter: SubjectFilter::parse("filter", "plant.>").unwrap(),
            ack_wait: StdDuration::from_secs(600),
            max_deliver: 3,
        })
        .await
        .unwrap();
    let envelope = alert_opened(&f, AlertKind::Overheating, Severity::Critical);
    let now = f.clock.now_for_tests();
    let press = MachineId("press-01".into());

    let issued = f.service.handle(&envelope).await.unwrap();
    assert_eq!(issued.len(), 1);
    let d = &issued[0];
    assert_eq!(d.kind, Kind::IncreaseMonitoring);
    assert_eq!(
        (d.factor, d.until),
        (Some(0.5), Some(envelope.occurred_at() + Duration::HOUR))
    );
    assert_eq!(d.trigger, envelope.id());
    // Applied: detection's handle has the machine at half its thresholds for an hour.
    assert_eq!(f.sensitivity.factor(&press, now), 0.5);
    assert_eq!(
        f.sensitivity.factor(&press, now + Duration::minutes(61)),
        1.0
    );

    // Published, caused by the alert's event.
    let delivery = events
        .next(StdDuration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let e = delivery.envelope();
    assert_eq!(e.subject(), "plant.increase_monitoring.plant-a.press-01");
    assert_eq!(e.cause(), Some(envelope.id()));
    let Event::Coordination(c) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!(c.decision, Some(d.decision.0));
    delivery.ack().await.unwrap();

    // Logged as the optimizer's decision.
    let log = f
        .gates
        .decisions(
            &fixtures::principal(Role::Viewer),
            &DecisionFilter::new(SiteScope::All, 10),
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].agent.as_str(), log[0].action.as_str(), log[0].id),
        ("optimizer", "increase_monitoring", d.decision)
    );

    // The same event again: nothing more, here (remembered) …
    assert!(f.service.handle(&envelope).await.unwrap().is_empty());
    // … and on a fresh agent (another node, or after a restart): the decision log has it.
    let fresh = service(&f.storage, &f.clock, &f.energy, &f.gates, &f.sensitivity);
    assert!(fresh.handle(&envelope).await.unwrap().is_empty());
    let log = f
        .storage
        .decisions
        .list_decisions(&DecisionFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "one decision for one event");
    // A warning alert asks for nothing.
    let warning = alert_opened(&f, AlertKind::Overheating, Severity::Warning);
    assert!(f.service.handle(&warning).await.unwrap().is_empty());
}

#[tokio::test]
async fn failure_risk_tickets_energy_and_anomaly_bursts_get_their_directives() {
    let f = fixture().await;
    let kinds = |ds: &[Directive]| ds.iter().map(|d| d.kind).collect::<Vec<_>>();

    let risk = alert_opened(&f, AlertKind::FailureRisk, Severity::Warning);
    let ds = f.service.handle(&risk).await.unwrap();
    assert_eq!(
        kinds(&ds),
        [Kind::IncreaseMonitoring, Kind::PrepareSpareParts]
    );
    assert_eq!(ds[1].failure_type.as_deref(), Some("other"));
    assert_ne!(ds[0].decision, ds[1].decision);

    let ticket = |status| {
        Envelope::new(
            "maintenance",
            Some("plant-a"),
            f.clock.now_for_tests(),
            Event::Ticket(TicketEvent {
                ticket: Uuid::now_v7(),
                machine: MachineId("press-01".into()),
                status,
                priority: TicketPriority::High,
                title: "Replace bearing".into(),
                failure_type: Some("bearing".into()),
                alert: Some(AlertId(Uuid::now_v7())),
                assignee: None,
            }),
        )
    };
    let ds = f.service.handle(&ticket(TicketStatus::Open)).await.unwrap();
    assert_eq!(kinds(&ds), [Kind::PrepareSpareParts]);
    assert_eq!(ds[0].failure_type.as_deref(), Some("bearing"));
    assert!(
        f.service
            .handle(&ticket(TicketStatus::InProgress))
            .await
            .unwrap()
            .is_empty()
    );

    let energy = |action| {
        Envelope::new(
            energy::SOURCE,
            Some("plant-a"),
            f.clock.now_for_tests(),
            Event::EnergyRecommendation(EnergyRecommendationEvent {
                recommendation: Uuid::now_v7(),
                machine: MachineId("press-02".into()),
                action,
                expected_kwh_saved: 4.0,
                expected_co2_kg_saved: 2.0,
                reason: "peak tariff".into(),
            }),
        )
    };
    for action in [EnergyAction::LoadReduction, EnergyAction::ShiftOffPeak] {
        let ds = f.service.handle(&energy(action)).await.unwrap();
        assert_eq!(kinds(&ds), [Kind::ActivateReductionMode]);
        assert_eq!(ds[0].machine, Some(MachineId("press-02".into())));
    }
    assert!(
        f.service
            .handle(&energy(EnergyAction::Standby))
            .await
            .unwrap()
            .is_empty()
    );

    // Anomalies of pump-01 (the event has no site: the machine's is looked up): the third
    // within ten minutes is a burst.
    let anomaly = |minute: i64| {
        let at = f.clock.now_for_tests() + Duration::minutes(minute);
        Envelope::new(
            "detection",
            None,
            at,
            Event::AnomalyDetected(AnomalyEvent {
                anomaly: Uuid::now_v7(),
                machine: MachineId("pump-01".into()),
                sensor: None,
                kind: AnomalyKind::Vibration,
                detector: DetectorKind::Statistical,
                severity: Severity::Warning,
                at,
                score: 0.7,
                evidence: Vec::new(),
            }),
        )
    };
    assert!(f.service.handle(&anomaly(0)).await.unwrap().is_empty());
    assert!(
        f.service.handle(&anomaly(20)).await.unwrap().is_empty(),
        "too far apart"
    );
    assert!(f.service.handle(&anomaly(25)).await.unwrap().is_empty());
    let ds = f.service.handle(&anomaly(28)).await.unwrap();
    assert_eq!(kinds(&ds), [Kind::IncreaseMonitoring]);
    assert_eq!(ds[0].site, "plant-a");
    assert!(
        f.service.handle(&anomaly(29)).await.unwrap().is_empty(),
        "a burst starts over"
    );
}
