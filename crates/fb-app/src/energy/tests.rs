use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use time::{Duration, Weekday};

use fb_core::energy::{CommandState, EnergyAction, TariffWindow, TimeOfDay};
use fb_core::events::SubjectFilter;
use fb_core::gates::DecisionOutcome;
use fb_core::identity::{Role, SiteScope, Subject, UserId};
use fb_core::plant::{MachineId, Reading, ReadingBatch, SensorKind};
use fb_core::ports::{AuditFilter, ConsumerName, ConsumerSpec, Storage};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use fb_testkit::fixtures;

use super::*;
use crate::bus::InProcessBus;

/// 2027-01-15T08:00:00Z, a Friday: inside the weekday 08:00–20:00 peak window.
fn clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::new())
}

fn config() -> Config {
    Config {
        factors: EmissionFactors::default(),
        tariff: Tariff {
            off_peak_price: 0.10,
            windows: vec![TariffWindow {
                name: "peak".into(),
                peak: true,
                days: vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
                start: TimeOfDay::parse("08:00").unwrap(),
                end: TimeOfDay::parse("20:00").unwrap(),
                price_per_kwh: 0.30,
            }],
        },
        rules: RecommendRules {
            idle_max_kw: 2.0,
            idle_min_minutes: 15,
            standby_kw: 0.5,
            horizon: Duration::hours(1),
            efficiency_margin: 0.2,
            non_critical_types: vec!["compressor".into()],
        },
        baseline_days: 2,
        lookback: Duration::minutes(60),
        expire_after: Duration::minutes(30),
    }
}

struct Fixture {
    service: Arc<Service>,
    storage: Storage,
    clock: Arc<FakeClock>,
    bus: Arc<dyn EventBus>,
    gates: Arc<crate::gates::Service>,
}

async fn fixture(sink: Option<Arc<dyn CommandSink>>) -> Fixture {
    let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
    let clock = clock();
    for (id, site, ty) in [
        ("press-01", "plant-a", "hydraulic_press"),
        ("press-02", "plant-b", "hydraulic_press"),
        ("comp-01", "plant-a", "compressor"),
    ] {
        let mut m = fixtures::machine(id);
        m.location.site = site.into();
        m.machine_type = ty.into();
        m.status = MachineStatus::Running;
        m.sensors.push(fixtures::sensor(
            "power",
            SensorKind::Power,
            "kW",
            0.0,
            500.0,
        ));
        m.created_at = clock.now_for_tests() - Duration::days(400);
        storage.machines.insert_machine(&m).await.unwrap();
    }
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(100));
    let service = Service::new(
        storage.machines.clone(),
        storage.readings.clone(),
        storage.recommendations.clone(),
        Arc::new(audit::Service::new(storage.audit.clone(), clock.clone())),
        clock.clone(),
        config(),
    );
    assert!(service.set_bus(bus.clone()));
    let gates = Arc::new(
        crate::gates::Service::new(
            storage.approvals.clone(),
            storage.decisions.clone(),
            fb_core::gates::Gates::default(),
            Arc::new(audit::Service::new(storage.audit.clone(), clock.clone())),
            clock.clone(),
        )
        .with_bus(bus.clone()),
    );
    if let Some(sink) = sink {
        let gated =
            gated::GatedCommands::install(gates.clone(), storage.recommendations.clone(), sink);
        assert!(service.set_commands(gated));
    }
    Fixture {
        service: Arc::new(service),
        storage,
        clock,
        bus,
        gates,
    }
}

/// One power reading per minute of `machine` at `kw`, for the `minutes` before `end`.
async fn power(f: &Fixture, machine: &str, end: OffsetDateTime, minutes: i64, kw: f64) {
    let readings: Vec<Reading> = (1..=minutes)
        .map(|i| Reading {
            machine: MachineId(machine.into()),
            sensor: SensorKey("power".into()),
            ts: end - Duration::minutes(i) + Duration::seconds(30),
            value: kw,
        })
        .collect();
    f.storage
        .readings
        .append_readings(&ReadingBatch::from_readings(&readings))
        .await
        .unwrap();
}

fn person(role: Role, sites: SiteScope) -> Principal {
    Principal {
        role,
        sites,
        subject: Subject::User {
            id: UserId(Uuid::now_v7()),
            username: format!("{role}-user"),
            session: None,
        },
        mfa_enrolment_pending: false,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn report_integrates_rollups_prices_them_and_compares_with_the_baseline() {
    let f = fixture(None).await;
    let now = f.clock.now_for_tests();
    // Today 08:00–10:00 at 12 kW: 24 kWh, all in the peak window at 0.30.
    power(&f, "press-01", now + Duration::hours(2), 120, 12.0).await;
    // Yesterday the same hours at 15 kW (45 kWh); two days ago none: the baseline is 30 kWh.
    power(
        &f,
        "press-01",
        now + Duration::hours(2) - Duration::days(1),
        120,
        15.0,
    )
    .await;
    // press-02 in plant-b draws 6 kW for one hour.
    power(&f, "press-02", now + Duration::hours(1), 60, 6.0).await;

    let q = ReportQuery {
        site: None,
        from: now,
        to: now + Duration::hours(2),
        bucket: Resolution::Minute,
    };
    let viewer = person(Role::Viewer, SiteScope::All);
    let r = f.service.report(&viewer, q.clone()).await.unwrap();
    assert_eq!(r.machines.len(), 3, "every machine with a power sensor");
    let p1 = &r
        .machines
        .iter()
        .find(|m| m.machine == "press-01")
        .unwrap()
        .figures;
    assert!(close(p1.kwh, 24.0), "{}", p1.kwh);
    assert!(close(p1.cost, 7.2), "{}", p1.cost);
    assert!(close(p1.co2_kg, 12.0));
    assert!(close(p1.baseline_kwh.unwrap(), 30.0));
    assert!(close(p1.reduction_pct.unwrap(), 20.0));
    let a = r.sites.iter().find(|s| s.site == "plant-a").unwrap();
    assert!(close(a.figures.kwh, 24.0));
    assert_eq!(a.series.len(), 120);
    let b = r.sites.iter().find(|s| s.site == "plant-b").unwrap();
    assert!(close(b.figures.kwh, 6.0));
    assert_eq!(b.figures.baseline_kwh, None);
    assert_eq!(b.figures.reduction_pct, None);

    // Hour buckets give the same energy here (no gaps).
    let hourly = f
        .service
        .report(
            &viewer,
            ReportQuery {
                bucket: Resolution::Hour,
                ..q.clone()
            },
        )
        .await
        .unwrap();
    let a = hourly.sites.iter().find(|s| s.site == "plant-a").unwrap();
    assert!(close(a.figures.kwh, 24.0), "{}", a.figures.kwh);

    // A caller of plant-b sees plant-b only, and asking for plant-a names the field.
    let scoped = person(
        Role::Viewer,
        SiteScope::Sites(["plant-b".to_owned()].into()),
    );
    let r = f.service.report(&scoped, q.clone()).await.unwrap();
    assert_eq!(r.sites.len(), 1);
    assert_eq!(r.sites[0].site, "plant-b");
    let err = f
        .service
        .report(
            &scoped,
            ReportQuery {
                site: Some("plant-a".into()),
                ..q.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::site_out_of_scope);
    assert_eq!(err.field_errors()[0].field, "site");
    let err = f
        .service
        .report(&viewer, ReportQuery { to: q.from, ..q })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::invalid_field);
    assert_eq!(err.field_errors()[0].field, "to");
}

struct Recorder(Mutex<Vec<MachineCommand>>);

#[async_trait]
impl CommandSink for Recorder {
    async fn submit(&self, command: &MachineCommand) -> Result<(), CommandError> {
        self.0.lock().unwrap().push(command.clone());
        Ok(())
    }
}

#[tokio::test]
async fn idle_machines_in_the_peak_get_standby_and_off_peak_recommendations_once() {
    let f = fixture(None).await;
    let mut events = f
        .bus
        .consumer(&ConsumerSpec {
            name: ConsumerName::parse("name", "test").unwrap(),
            filter: SubjectFilter::parse("filter", "energy.>").unwrap(),
            ack_wait: StdDuration::from_secs(600),
            max_deliver: 3,
        })
        .await
        .unwrap();
    let now = f.clock.now_for_tests();
    // press-01 idles at 1.5 kW for 20 minutes; press-02 works at 40 kW; the compressor (non
    // critical) works at 10 kW in the peak.
    power(&f, "press-01", now, 20, 1.5).await;
    power(&f, "press-02", now, 20, 40.0).await;
    power(&f, "comp-01", now, 20, 10.0).await;

    let created = f.service.generate().await.unwrap();
    let mut kinds: Vec<(String, EnergyAction)> = created
        .iter()
        .map(|r| (r.machine.0.clone(), r.action))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("comp-01".to_owned(), EnergyAction::ShiftOffPeak),
            ("press-01".to_owned(), EnergyAction::Standby),
        ]
    );
    let standby = created
        .iter()
        .find(|r| r.action == EnergyAction::Standby)
        .unwrap();
    assert!(close(standby.expected_kwh_saved, 1.0)); // (1.5 − 0.5) kW × 1 h
    assert!(close(standby.expected_cost_saved, 0.30));
    assert!(close(standby.expected_co2_kg_saved, 0.5));
    assert_eq!(standby.site, "plant-a");
    assert_eq!(standby.expires_at, now + Duration::minutes(30));

    // Each is announced on the bus and in the audit log.
    for _ in 0..2 {
        let d = events
            .next(StdDuration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.envelope().event().name(), "energy.recommended");
        assert_eq!(d.envelope().site(), Some("plant-a"));
        d.ack().await.unwrap();
    }
    let audit = f
        .storage
        .audit
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.entry.action == "energy.recommend")
            .count(),
        2
    );

    // The next round finds them open and proposes nothing again.
    assert!(f.service.generate().await.unwrap().is_empty());

    // Undecided, they expire; a later round proposes afresh (the machine still idles).
    f.clock.advance(Duration::minutes(31));
    let later = f.clock.now_for_tests();
    power(&f, "press-01", later, 20, 1.5).await;
    let again = f.service.generate().await.unwrap();
    assert!(again.iter().any(|r| r.action == EnergyAction::Standby));
    let expired = f
        .service
        .list(
            &person(Role::Viewer, SiteScope::All),
            Some(RecommendationStatus::Expired),
            None,
            100,
        )
        .await
        .unwrap();
    assert!(expired.iter().any(|r| r.id == standby.id));
}

#[tokio::test]
async fn a_gap_in_the_last_minutes_is_not_taken_for_idleness() {
    let f = fixture(None).await;
    let now = f.clock.now_for_tests();
    // 30 idle minutes that ended 10 minutes ago: old data, no standby.
    power(&f, "press-01", now - Duration::minutes(10), 30, 1.0).await;
    let created = f.service.generate().await.unwrap();
    assert!(
        created.iter().all(|r| r.action != EnergyAction::Standby),
        "{created:?}"
    );
}

#[tokio::test]
async fn accepting_needs_energy_manage_and_the_site_and_records_the_command() {
    let f = fixture(None).await;
    let now = f.clock.now_for_tests();
    power(&f, "press-01", now, 20, 1.5).await;
    let created = f.service.generate().await.unwrap();
    let standby = created
        .iter()
        .find(|r| r.action == EnergyAction::Standby)
        .unwrap();

    let operator = person(Role::Operator, SiteScope::All);
    let err = f.service.accept(&operator, standby.id).await.unwrap_err();
    assert_eq!(err.code(), Code::permission_denied);
    let elsewhere = person(
        Role::Supervisor,
        SiteScope::Sites(["plant-b".to_owned()].into()),
    );
    let err = f.service.accept(&elsewhere, standby.id).await.unwrap_err();
    assert_eq!(err.code(), Code::recommendation_not_found);

    // No sink wired (the gate comes with E5): the command is recorded as pending.
    let supervisor = person(Role::Supervisor, SiteScope::All);
    let accepted = f.service.accept(&supervisor, standby.id).await.unwrap();
    assert_eq!(accepted.status, RecommendationStatus::Accepted);
    assert_eq!(
        accepted.decided_by.as_deref(),
        Some(supervisor.describe().as_str())
    );
    assert!(accepted.command_id.is_some());
    assert_eq!(accepted.command_state, Some(CommandState::Pending));
    // Decided once.
    let err = f
        .service
        .dismiss(&supervisor, standby.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::recommendation_not_open);

    // Nothing else is proposed in plant-a: the compressor drew nothing here.
    let shift = f
        .service
        .list(
            &supervisor,
            Some(RecommendationStatus::Proposed),
            Some("plant-a".into()),
            10,
        )
        .await
        .unwrap();
    assert!(shift.is_empty(), "{shift:?}");
}

#[tokio::test]
async fn an_accepted_command_goes_to_the_wired_sink_and_is_marked_sent() {
    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    let f = fixture(Some(recorder.clone())).await;
    let now = f.clock.now_for_tests();
    power(&f, "press-01", now, 20, 1.5).await;
    power(&f, "comp-01", now, 20, 10.0).await;
    let created = f.service.generate().await.unwrap();
    let standby = created
        .iter()
        .find(|r| r.action == EnergyAction::Standby)
        .unwrap();
    let shift = created
        .iter()
        .find(|r| r.action == EnergyAction::ShiftOffPeak)
        .unwrap();
    let supervisor = person(Role::Supervisor, SiteScope::All);

    let accepted = f.service.accept(&supervisor, standby.id).await.unwrap();
    assert_eq!(accepted.command_state, Some(CommandState::Sent));
    let dismissed = f.service.dismiss(&supervisor, shift.id).await.unwrap();
    assert_eq!(dismissed.status, RecommendationStatus::Dismissed);
    assert_eq!(dismissed.command_id, None);

    let sent = recorder.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "only the accepted one");
    assert_eq!(sent[0].id, accepted.command_id.unwrap());
    assert_eq!(sent[0].command, "standby");
    assert_eq!(sent[0].machine.0, "press-01");
    assert_eq!(sent[0].site, "plant-a");
    assert_eq!(sent[0].issued_at, now);
}

#[tokio::test]
async fn an_expired_recommendation_cannot_be_accepted() {
    let f = fixture(None).await;
    let now = f.clock.now_for_tests();
    power(&f, "press-01", now, 20, 1.5).await;
    let created = f.service.generate().await.unwrap();
    f.clock.advance(Duration::minutes(30));
    let supervisor = person(Role::Supervisor, SiteScope::All);
    let err = f
        .service
        .accept(&supervisor, created[0].id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::recommendation_not_open);
    assert_eq!(
        f.service
            .get(&supervisor, created[0].id)
            .await
            .unwrap()
            .status,
        RecommendationStatus::Expired
    );
}

/// A transport that refuses its first `failures` commands, then records them.
struct Flaky {
    failures: Mutex<u32>,
    sent: Mutex<Vec<MachineCommand>>,
}

impl Flaky {
    fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self {
            failures: Mutex::new(failures),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn sent(&self) -> Vec<MachineCommand> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl CommandSink for Flaky {
    async fn submit(&self, command: &MachineCommand) -> Result<(), CommandError> {
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(CommandError("broker unreachable".into()));
        }
        self.sent.lock().unwrap().push(command.clone());
        Ok(())
    }
}

/// An idle press and a non-critical compressor in the peak: a standby and an off-peak
/// recommendation, each announced on the bus.
async fn idle_plant(f: &Fixture) -> (Recommendation, Recommendation) {
    let now = f.clock.now_for_tests();
    power(f, "press-01", now, 20, 1.5).await;
    power(f, "comp-01", now, 20, 10.0).await;
    let created = f.service.generate().await.unwrap();
    let pick = |a: EnergyAction| created.iter().find(|r| r.action == a).unwrap().clone();
    (
        pick(EnergyAction::Standby),
        pick(EnergyAction::ShiftOffPeak),
    )
}

fn agent_options() -> crate::agents::RunOptions {
    crate::agents::RunOptions {
        ack_wait: StdDuration::from_millis(300),
        max_deliver: 10,
        poll: StdDuration::from_millis(20),
    }
}

/// The energy agent over the fixture's service, its consumer created on the fixture's bus.
async fn energy_agent(f: &Fixture) -> Arc<dyn crate::agents::Agent> {
    let agent: Arc<dyn crate::agents::Agent> =
        Arc::new(crate::agents::EnergyAgent::new(f.service.clone()));
    crate::agents::register(f.bus.as_ref(), agent.as_ref(), agent_options())
        .await
        .unwrap();
    agent
}

/// Runs `agent` on the fixture's bus until the returned sender says stop.
fn start(
    f: &Fixture,
    agent: Arc<dyn crate::agents::Agent>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(crate::agents::run(
        f.bus.clone(),
        agent,
        agent_options(),
        stop,
    ));
    (stop_tx, task)
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test]
async fn a_person_accepting_a_command_its_gate_does_not_allow_waits_for_an_approver() {
    let transport = Flaky::new(0);
    let f = fixture(Some(transport.clone())).await;
    let (_, shift) = idle_plant(&f).await;
    let supervisor = person(Role::Supervisor, SiteScope::All);

    // `defer_run` is not among the commands the gate lets run without a person.
    let accepted = f.service.accept(&supervisor, shift.id).await.unwrap();
    assert_eq!(accepted.command_state, Some(CommandState::Pending));
    assert!(transport.sent().is_empty());
    let held = f
        .storage
        .approvals
        .list_approvals(&fb_core::ports::ApprovalFilter::new(SiteScope::All, 100))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].command.as_deref(), Some("defer_run"));
    assert_eq!(held[0].reasons, ["command_not_allowed: 'defer_run'"]);

    // An operator cannot answer it; a supervisor's approval sends it, once.
    let operator = person(Role::Operator, SiteScope::All);
    let err = f
        .gates
        .approve(&operator, held[0].id, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::permission_denied);
    let approved = f
        .gates
        .approve(&supervisor, held[0].id, None)
        .await
        .unwrap();
    assert!(matches!(
        approved.execution,
        crate::gates::Execution::Executed(_)
    ));
    let sent = transport.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, accepted.command_id.unwrap());
    assert_eq!(
        f.service
            .get(&supervisor, shift.id)
            .await
            .unwrap()
            .command_state,
        Some(CommandState::Sent)
    );
}

#[tokio::test]
async fn the_energy_agent_sends_standby_through_its_gate_once_and_holds_the_rest() {
    let transport = Flaky::new(0);
    let f = fixture(Some(transport.clone())).await;
    let agent = energy_agent(&f).await;
    let (standby, shift) = idle_plant(&f).await;
    let (stop_tx, task) = start(&f, agent.clone());
    let viewer = person(Role::Viewer, SiteScope::All);
    eventually("both recommendations handled", async || {
        let s = f.service.get(&viewer, standby.id).await.unwrap();
        let o = f.service.get(&viewer, shift.id).await.unwrap();
        s.command_state == Some(CommandState::Sent) && o.status == RecommendationStatus::Accepted
    })
    .await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();

    let sent = transport.sent();
    assert_eq!(
        sent.len(),
        1,
        "only standby passes the gate alone: {sent:?}"
    );
    assert_eq!(sent[0].command, "standby");
    let shift = f.service.get(&viewer, shift.id).await.unwrap();
    assert_eq!(shift.decided_by.as_deref(), Some(SOURCE));
    assert_eq!(shift.command_state, Some(CommandState::Pending));

    // The decision log: standby executed at 0.95, the off-peak run held at 0.70.
    let decisions = f
        .storage
        .decisions
        .list_decisions(&fb_core::ports::DecisionFilter::new(SiteScope::All, 100))
        .await
        .unwrap();
    let mut log: Vec<(String, f64, DecisionOutcome)> = decisions
        .iter()
        .map(|d| (d.agent.clone(), d.confidence, d.outcome))
        .collect();
    log.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(
        log,
        [
            (SOURCE.to_owned(), 0.7, DecisionOutcome::Held),
            (SOURCE.to_owned(), 0.95, DecisionOutcome::Executed),
        ]
    );

    // The same event handled again (a redelivery) does nothing more.
    let envelope = Envelope::new(
        SOURCE,
        Some("plant-a"),
        standby.created_at,
        Event::EnergyRecommendation(EnergyRecommendationEvent {
            recommendation: standby.id.0,
            machine: standby.machine.clone(),
            action: standby.action,
            expected_kwh_saved: standby.expected_kwh_saved,
            expected_co2_kg_saved: standby.expected_co2_kg_saved,
            reason: standby.reason.clone(),
        }),
    );
    assert_eq!(
        agent.handle(&envelope).await.unwrap(),
        crate::agents::Handled::Nothing
    );
    assert_eq!(transport.sent().len(), 1);
}

#[tokio::test]
async fn an_energy_agent_stopped_between_acceptance_and_gate_finishes_once_after_restart() {
    let transport = Flaky::new(0);
    let f = fixture(Some(transport.clone())).await;
    let agent = energy_agent(&f).await;
    let (standby, _) = idle_plant(&f).await;
    // The agent accepted the standby and stopped before it reached the gate: the store says
    // accepted, command pending, and the event was never acknowledged.
    let command = Uuid::now_v7();
    assert!(
        f.storage
            .recommendations
            .decide_recommendation(
                standby.id,
                RecommendationStatus::Accepted,
                SOURCE,
                f.clock.now_for_tests(),
                Some(command),
            )
            .await
            .unwrap()
    );
    let (stop_tx, task) = start(&f, agent);
    eventually("the standby command sent", async || {
        !transport.sent().is_empty()
    })
    .await;
    // Long enough for any redelivery to have come and gone.
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    let sent = transport.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].id, command,
        "the command id the acceptance recorded"
    );
}

#[tokio::test]
async fn a_command_the_transport_refuses_is_retried_until_it_goes_out_once() {
    let transport = Flaky::new(2);
    let f = fixture(Some(transport.clone())).await;
    let agent = energy_agent(&f).await;
    let (standby, _) = idle_plant(&f).await;
    let (stop_tx, task) = start(&f, agent);
    let viewer = person(Role::Viewer, SiteScope::All);
    eventually("the standby command sent", async || {
        f.service
            .get(&viewer, standby.id)
            .await
            .unwrap()
            .command_state
            == Some(CommandState::Sent)
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(transport.sent().len(), 1);
    // Two failed attempts, each in the decision log after the one gate decision.
    let decisions = f
        .storage
        .decisions
        .list_decisions(&fb_core::ports::DecisionFilter::new(SiteScope::All, 100))
        .await
        .unwrap();
    let standby_log: Vec<DecisionOutcome> = decisions
        .iter()
        .filter(|d| d.confidence == 0.95)
        .map(|d| d.outcome)
        .collect();
    assert_eq!(
        standby_log
            .iter()
            .filter(|o| **o == DecisionOutcome::Executed)
            .count(),
        1
    );
    assert_eq!(
        standby_log
            .iter()
            .filter(|o| **o == DecisionOutcome::Failed)
            .count(),
        2
    );
}

#[tokio::test]
async fn a_decided_recommendation_is_not_proposed_again_within_its_horizon() {
    let f = fixture(Some(Flaky::new(0))).await;
    let (standby, shift) = idle_plant(&f).await;
    let supervisor = person(Role::Supervisor, SiteScope::All);
    f.service.accept(&supervisor, standby.id).await.unwrap();
    f.service.dismiss(&supervisor, shift.id).await.unwrap();

    // Ten minutes on, both machines look the same (the press ignored its standby): nothing.
    f.clock.advance(Duration::minutes(10));
    let now = f.clock.now_for_tests();
    power(&f, "press-01", now, 20, 1.5).await;
    power(&f, "comp-01", now, 20, 10.0).await;
    assert!(f.service.generate().await.unwrap().is_empty());

    // Past the horizon (an hour), the rules speak again.
    f.clock.advance(Duration::minutes(55));
    let later = f.clock.now_for_tests();
    power(&f, "press-01", later, 20, 1.5).await;
    power(&f, "comp-01", later, 20, 10.0).await;
    let again = f.service.generate().await.unwrap();
    let mut actions: Vec<EnergyAction> = again.iter().map(|r| r.action).collect();
    actions.sort_by_key(|a| a.as_str());
    assert_eq!(actions, [EnergyAction::ShiftOffPeak, EnergyAction::Standby]);
}
