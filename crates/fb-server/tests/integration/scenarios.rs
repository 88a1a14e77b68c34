//! Issue #7's scenarios end to end, driven by the simulator, on the real store, the real event
//! bus (in process, and NATS JetStream on 127.0.0.1:4222 with a stream and subject prefix per
//! run) and the real broker (Mosquitto on 127.0.0.1:1883, a topic prefix per run). The server's
//! background services run as `serve` wires them: detection, the bus publisher, the auto-ticket
//! rule, the energy generator, the gate sweeper and the agents. Mid-scenario the agents are
//! killed (their tasks aborted wherever they are, as a crashed node's would be) and started
//! again: no action may be lost or done twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use fb_core::identity::Role;
use fb_core::ports::EventBus;
use fb_server::wire;
use fb_sim::{MachineKind, Simulator, plant_machines};

use crate::support::TestApp;

/// A guard against hanging, not a timed assertion.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    InProcess,
    #[cfg(feature = "nats")]
    Nats,
}

/// A plant as `serve` runs it, minus the HTTP listener (the tests call the router in process).
pub struct Scenario {
    pub app: TestApp,
    pub mqtt_prefix: String,
    bus: Arc<dyn EventBus>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    agents: Vec<JoinHandle<()>>,
    agents_stop: watch::Sender<bool>,
    _commands: Option<Arc<fb_mqtt::CommandPublisher>>,
}

impl Scenario {
    pub async fn start(bus: Bus, extra: Vec<(String, String)>) -> Self {
        let run = uuid::Uuid::now_v7().simple().to_string();
        let mqtt_prefix = format!("fbtest-{run}");
        let mut env: Vec<(String, String)> = vec![
            ("FB__MQTT__ENABLED".into(), "true".into()),
            ("FB__MQTT__URL".into(), "mqtt://127.0.0.1:1883".into()),
            ("FB__MQTT__CLIENT_ID".into(), mqtt_prefix.clone()),
            ("FB__MQTT__TOPIC_PREFIX".into(), mqtt_prefix.clone()),
            // Redeliveries within the test's patience.
            ("FB__BUS__ACK_WAIT_SECS".into(), "2".into()),
            // Every hour of the day is peak, so that idle machines are worth a standby.
            (
                "FB__ENERGY__TARIFF__WINDOWS".into(),
                r#"[{name: "peak", peak: true, days: [], start: "00:00", end: "24:00", price_per_kwh: 0.30}]"#
                    .into(),
            ),
            (
                "FB__ENERGY__RECOMMENDATIONS__IDLE_MIN_MINUTES".into(),
                "5".into(),
            ),
            (
                "FB__ENERGY__RECOMMENDATIONS__EVERY_SECS".into(),
                "1".into(),
            ),
            ("FB__GATES__SWEEP_INTERVAL_SECS".into(), "1".into()),
        ];
        #[cfg(feature = "nats")]
        if bus == Bus::Nats {
            env.extend([
                ("FB__BUS__KIND".into(), "nats".into()),
                (
                    "FB__BUS__URL".into(),
                    std::env::var("FB_TEST_NATS_URL")
                        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
                ),
                ("FB__BUS__STREAM".into(), format!("FBTEST_{run}")),
                ("FB__BUS__SUBJECT_PREFIX".into(), format!("fbtest.{run}")),
            ]);
        }
        env.extend(extra);
        let app = TestApp::with_env(env).await;
        let event_bus = wire::open_bus(&app.settings).await.unwrap();
        app.state.gates.attach_bus(event_bus.clone());
        app.state.procurement.set_bus(event_bus.clone());
        app.state.optimizer.attach_bus(event_bus.clone());
        let (stop, stopped) = watch::channel(false);
        let commands = wire::install_machine_commands(&app.settings, None, &app.state).unwrap();
        assert!(commands.is_some(), "a command publisher on Mosquitto");
        let (agents_stop, agents_stopped) = watch::channel(false);
        let agents =
            wire::spawn_agents(&app.settings, &app.state, event_bus.clone(), agents_stopped).await;
        let mut tasks = Vec::new();
        tasks.extend(wire::spawn_energy(
            &app.settings,
            &app.state,
            event_bus.clone(),
            stopped.clone(),
        ));
        tasks.push(wire::spawn_bus_publisher(
            &app.storage,
            &app.state,
            event_bus.clone(),
            stopped.clone(),
        ));
        tasks.push(wire::spawn_gate_sweeper(
            &app.settings,
            &app.state,
            stopped.clone(),
        ));
        tasks.push(wire::spawn_auto_tickets(
            &app.storage,
            &app.state,
            stopped.clone(),
        ));
        tasks.push(
            wire::spawn_detection(&app.settings, &app.storage, &app.state, stopped.clone())
                .unwrap(),
        );
        Self {
            app,
            mqtt_prefix,
            bus: event_bus,
            stop,
            tasks,
            agents,
            agents_stop,
            _commands: commands,
        }
    }

    /// Kills the agents wherever they are (their tasks aborted, as a crashed node's: what they
    /// took and did not acknowledge comes back after `bus.ack_wait_secs`) and starts them again.
    pub async fn crash_and_restart_agents(&mut self) {
        for task in self.agents.drain(..) {
            task.abort();
            let _ = task.await;
        }
        let (agents_stop, stopped) = watch::channel(false);
        self.agents_stop = agents_stop;
        self.agents = wire::spawn_agents(
            &self.app.settings,
            &self.app.state,
            self.bus.clone(),
            stopped,
        )
        .await;
    }

    /// Stops the plant; a NATS run's stream goes with it.
    pub async fn finish(self) {
        let _ = self.agents_stop.send(true);
        let _ = self.stop.send(true);
        for task in self.agents.into_iter().chain(self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        #[cfg(feature = "nats")]
        if self.bus.backend() == "nats" {
            let b = &self.app.settings.bus;
            let options = fb_nats::Options {
                url: b.url.expose().to_owned(),
                stream: b.stream.clone(),
                prefix: b.prefix().unwrap(),
                max_events: 100,
                client_name: "cleanup".into(),
            };
            fb_nats::NatsBus::connect(&options)
                .await
                .unwrap()
                .delete_stream()
                .await
                .unwrap();
        }
        self.app.finish().await;
    }
}

/// The simulated plant: five machines (pump, compressor, press, CNC mill, conveyor) registered
/// through the API, and their simulator.
pub struct Plant {
    pub sim: Simulator,
    pub machines: Vec<(fb_core::plant::Machine, MachineKind)>,
}

impl Plant {
    /// Registers the machines and starts the simulator `history` before now, without random
    /// faults (each scenario plans its own).
    pub async fn register(app: &TestApp, history: time::Duration) -> Self {
        use fb_app::auth::SystemPrincipal;
        let start = OffsetDateTime::now_utc() - history;
        let machines = plant_machines(5, start);
        for (m, _) in &machines {
            let new = fb_core::plant::NewMachine {
                id: m.id.0.clone(),
                name: m.name.clone(),
                machine_type: m.machine_type.clone(),
                machine_class: m.machine_class,
                location: m.location.clone(),
                status: m.status,
                active: m.active,
                sensors: m.sensors.clone(),
                last_maintenance: None,
                next_maintenance: None,
            };
            app.state
                .plant
                .create(&fb_core::identity::Principal::system(), new)
                .await
                .unwrap();
        }
        let sim = Simulator::new(7, &machines, start).with_fault_rate(0.0);
        Self { sim, machines }
    }

    pub fn id(&self, kind: MachineKind) -> fb_core::plant::MachineId {
        self.machines
            .iter()
            .find(|(_, k)| *k == kind)
            .map(|(m, _)| m.id.clone())
            .unwrap()
    }

    /// Steps the simulator by `step` up to `until` and posts what it reads through the API.
    pub async fn run_until(
        &mut self,
        app: &TestApp,
        token: &str,
        until: OffsetDateTime,
        step: time::Duration,
    ) {
        let mut batch: Vec<Value> = Vec::new();
        while self.sim.now() + step <= until {
            for r in self.sim.step(step) {
                batch.push(json!({
                    "machine": r.machine.0, "sensor": r.sensor.0,
                    "ts": r.ts.format(&Rfc3339).unwrap(), "value": r.value,
                }));
            }
            if batch.len() >= 5_000 {
                post(app, token, std::mem::take(&mut batch)).await;
            }
        }
        if !batch.is_empty() {
            post(app, token, batch).await;
        }
    }
}

async fn post(app: &TestApp, token: &str, batch: Vec<Value>) {
    let n = batch.len();
    let stored = app
        .post("/api/v1/readings", Some(token), json!(batch))
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    assert_eq!(stored.body["accepted"], n, "{}", stored.body);
}

/// Every message on `{prefix}/#` of Mosquitto, as (topic, JSON), from the subscription on.
pub async fn listen(prefix: &str) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Value)>) {
    let mut options = MqttOptions::new(format!("{prefix}-listener"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 100);
    client
        .subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), body)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(PATIENCE, subscribed)
        .await
        .expect("the subscription confirmed")
        .unwrap();
    (client, rx)
}

/// Idle machines in a peak tariff window → standby recommendations → the energy agent → the
/// machine-command gate → commands on Mosquitto, each exactly once though the agents crash
/// after the first.
async fn idle_machines_in_the_peak_get_one_standby_command_each(bus: Bus) {
    let mut s = Scenario::start(bus, Vec::new()).await;
    let admin = s.app.admin_token().await;
    let (_listener, mut commands) = listen(&s.mqtt_prefix).await;
    let mut plant = Plant::register(&s.app, time::Duration::minutes(20)).await;
    // The mill and the conveyor stand idle; the rest work hard.
    let idle = [
        plant.id(MachineKind::CncMill),
        plant.id(MachineKind::Conveyor),
    ];
    for (m, kind) in plant.machines.clone() {
        let load = match kind {
            MachineKind::CncMill | MachineKind::Conveyor => 0.05,
            _ => 0.8,
        };
        plant.sim.pin_load(&m.id, Some(load));
    }
    plant
        .run_until(
            &s.app,
            &admin,
            OffsetDateTime::now_utc(),
            time::Duration::seconds(10),
        )
        .await;

    // The agents crash before the generator's next round and again after the first command
    // is out, whatever they were doing: what was published meanwhile waits for them, what
    // they held unacknowledged comes back.
    s.crash_and_restart_agents().await;
    let first = tokio::time::timeout(PATIENCE, commands.recv())
        .await
        .expect("a command within the patience")
        .unwrap();
    s.crash_and_restart_agents().await;
    let mut seen = vec![first];
    while seen.len() < idle.len() {
        let next = tokio::time::timeout(PATIENCE, commands.recv())
            .await
            .expect("every idle machine's command within the patience")
            .unwrap();
        seen.push(next);
    }
    // Long enough for redeliveries (ack_wait 2 s) and generator rounds (every 1 s) to show
    // any duplicate.
    tokio::time::sleep(Duration::from_secs(6)).await;
    while let Ok(more) = commands.try_recv() {
        seen.push(more);
    }
    let mut by_machine: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (topic, body) in &seen {
        assert!(topic.ends_with("/cmd"), "{topic}");
        assert_eq!(body["command"], "standby", "{body}");
        by_machine
            .entry(body["machine"].as_str().unwrap().to_owned())
            .or_default()
            .push(body.clone());
    }
    let mut expected: Vec<String> = idle.iter().map(|m| m.0.clone()).collect();
    expected.sort();
    assert_eq!(
        by_machine.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{seen:?}"
    );
    for (machine, sent) in &by_machine {
        assert_eq!(sent.len(), 1, "{machine} got {sent:?}");
        assert_eq!(
            sent[0]["site"], "demo-plant",
            "published on the machine's site topic"
        );
    }

    // The decision log says the same: one executed standby per idle machine, by the agent.
    let viewer = s.app.token_for("vera", Role::Viewer).await;
    let log = s
        .app
        .get(
            "/api/v1/decisions?agent=agent:energy&limit=100",
            Some(&viewer),
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let executed: Vec<&Value> = log.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "machine_command" && d["outcome"] == "executed")
        .collect();
    assert_eq!(executed.len(), idle.len(), "{}", log.body);
    for d in &executed {
        assert!(
            (d["confidence"].as_f64().unwrap() - 0.95).abs() < 1e-9,
            "{d}"
        );
    }
    // And the recommendations: accepted by the agent, their commands sent.
    let recs = s
        .app
        .get(
            "/api/v1/energy/recommendations?status=accepted",
            Some(&viewer),
        )
        .await;
    let recs = recs.body["recommendations"].as_array().unwrap().clone();
    assert_eq!(recs.len(), idle.len(), "{recs:?}");
    for r in &recs {
        assert_eq!(r["action"], "standby");
        assert_eq!(r["decided_by"], "agent:energy");
        assert_eq!(r["command_state"], "sent");
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_machines_get_one_standby_command_each_on_the_in_process_bus() {
    idle_machines_in_the_peak_get_one_standby_command_each(Bus::InProcess).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_machines_get_one_standby_command_each_on_nats_jetstream() {
    idle_machines_in_the_peak_get_one_standby_command_each(Bus::Nats).await;
}

/// Polls `path` as `token` until `found` picks something from the answer (at most the
/// patience).
async fn poll_until<T>(
    app: &TestApp,
    token: &str,
    path: &str,
    found: impl Fn(&Value) -> Option<T>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        let answer = app.get(path, Some(token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        if let Some(t) = found(&answer.body) {
            return t;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{path} never showed it: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worn bearing on the pump → a critical vibration alert → a maintenance ticket → the
/// procurement agent orders bearings (none in stock) over the gate's limit → held → an
/// Operator cannot approve, a Supervisor does → the order is placed with its savings; the
/// chain is in the audit log and the decision log, once, though the agents crash twice.
async fn a_bearing_fault_ends_in_a_placed_order_a_supervisor_approved(bus: Bus) {
    // Orders above 20.00 wait for a person.
    let mut s = Scenario::start(
        bus,
        vec![(
            "FB__GATES__PURCHASE_ORDER__MAX_AMOUNT_MINOR".into(),
            "2000".into(),
        )],
    )
    .await;
    let app = &s.app;
    let admin = app.admin_token().await;
    fb_server::demo_procurement::seed(&app.state.procurement)
        .await
        .unwrap();
    let system = <fb_core::identity::Principal as fb_app::auth::SystemPrincipal>::system();
    // The plant's bearings are used up.
    app.state
        .procurement
        .put_stock(
            &system,
            fb_core::procurement::StockItem {
                site: "demo-plant".into(),
                part: "BRG-6205".into(),
                on_hand: 0,
                reserved: 0,
                reorder_point: 0,
                reorder_quantity: 0,
            },
        )
        .await
        .unwrap();
    let mut plant = Plant::register(app, time::Duration::minutes(15)).await;
    for (m, _) in plant.machines.clone() {
        plant.sim.pin_load(&m.id, Some(0.8));
    }
    let pump = plant.id(MachineKind::Pump);
    let now = OffsetDateTime::now_utc();
    plant
        .run_until(
            app,
            &admin,
            now - time::Duration::minutes(3),
            time::Duration::seconds(10),
        )
        .await;
    // The bearing gives out: vibration far over the pump's critical limit.
    plant.sim.set_wear(&pump, 0.9);
    plant
        .run_until(app, &admin, now, time::Duration::seconds(10))
        .await;
    s.crash_and_restart_agents().await;
    let app = &s.app;

    let supervisor = app.token_for("sue", Role::Supervisor).await;
    let ticket = poll_until(
        app,
        &supervisor,
        &format!("/api/v1/tickets?machine={}", pump.0),
        |body| {
            body["tickets"]
                .as_array()?
                .iter()
                .find(|t| t["failure_type"] == "bearing")
                .cloned()
        },
    )
    .await;
    assert_eq!(ticket["reporter"], "system");
    assert_eq!(ticket["priority"], "critical", "{ticket}");
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();
    s.crash_and_restart_agents().await;
    let app = &s.app;

    let order = poll_until(
        app,
        &supervisor,
        &format!("/api/v1/procurement/orders?ticket={ticket_id}"),
        |body| {
            body["orders"]
                .as_array()?
                .iter()
                .find(|o| o["part"] == "BRG-6205" && o["approval"].is_string())
                .cloned()
        },
    )
    .await;
    assert_eq!(order["status"], "awaiting_approval", "{order}");
    assert_eq!(
        order["quantity"], 2,
        "the BOM's two bearings, none in stock"
    );
    assert_eq!(order["urgency"], "critical");
    assert_eq!(order["quotes"].as_array().unwrap().len(), 3, "{order}");
    assert!(order["amount_minor"].as_i64().unwrap() > 2000, "{order}");
    let approval = order["approval"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/approvals/{approval}");
    let item = app.get(&path, Some(&supervisor)).await;
    assert_eq!(item.body["kind"], "purchase_order", "{}", item.body);
    assert!(
        item.body["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("amount_over_limit"),
        "{}",
        item.body
    );

    // An Operator may not approve; a Supervisor does, and the order is placed.
    let operator = app.token_for("otto", Role::Operator).await;
    let refused = app
        .post(&format!("{path}/approve"), Some(&operator), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let approved = app
        .post(
            &format!("{path}/approve"),
            Some(&supervisor),
            json!({"reason": "line down without it"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["execution"]["outcome"], "executed");
    let order_id = order["id"].as_str().unwrap();
    let placed = app
        .get(
            &format!("/api/v1/procurement/orders/{order_id}"),
            Some(&supervisor),
        )
        .await;
    assert_eq!(placed.body["status"], "placed", "{}", placed.body);
    let savings = placed.body["savings_minor"].as_i64().unwrap();
    let quoted = placed.body["quoted_unit_minor"].as_i64().unwrap();
    let negotiated = placed.body["negotiated_unit_minor"].as_i64().unwrap();
    assert!(savings > 0, "{}", placed.body);
    assert_eq!(savings, (quoted - negotiated) * 2);
    let total = app
        .get("/api/v1/procurement/savings", Some(&supervisor))
        .await;
    assert_eq!(total.status, StatusCode::OK, "{}", total.body);
    assert_eq!(
        total.body["total"][0]["savings_minor"], savings,
        "{}",
        total.body
    );

    // Once each, despite the crashes: one bearing ticket, one order for its bearings.
    let orders = app
        .get(
            &format!("/api/v1/procurement/orders?ticket={ticket_id}"),
            Some(&supervisor),
        )
        .await;
    let bearings: Vec<&Value> = orders.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["part"] == "BRG-6205")
        .collect();
    assert_eq!(bearings.len(), 1, "{}", orders.body);
    let tickets = app
        .get(
            &format!("/api/v1/tickets?machine={}", pump.0),
            Some(&supervisor),
        )
        .await;
    let bearing_tickets = tickets.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["failure_type"] == "bearing")
        .count();
    assert_eq!(bearing_tickets, 1, "{}", tickets.body);

    // The decision log: the ticket, the held order, its execution after the approval.
    let viewer = app.token_for("vera", Role::Viewer).await;
    let log = app.get("/api/v1/decisions?limit=200", Some(&viewer)).await;
    let decisions = log.body["decisions"].as_array().unwrap();
    let about_ticket = |agent: &str, action: &str, outcome: &str| {
        decisions
            .iter()
            .filter(|d| {
                d["agent"] == agent
                    && d["action"] == action
                    && d["outcome"] == outcome
                    && d["ticket"] == ticket_id.as_str()
            })
            .count()
    };
    assert_eq!(
        about_ticket("maintenance", "ticket.auto_open", "executed"),
        1,
        "{}",
        log.body
    );
    assert_eq!(
        about_ticket("procurement", "purchase_order", "held"),
        1,
        "{}",
        log.body
    );
    assert_eq!(
        about_ticket("procurement", "purchase_order", "executed"),
        1,
        "{}",
        log.body
    );

    // The audit log: the chain from the ticket to the placed order.
    let audit = app.get("/api/v1/audit?limit=1000", Some(&admin)).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let actions: Vec<(String, String)> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let has = |action: &str, target: &str| actions.iter().any(|(a, t)| a == action && t == target);
    let order_target = format!("order:{order_id}");
    let approval_target = format!("approval:{approval}");
    assert!(
        has("ticket.auto_open", &format!("ticket:{ticket_id}")),
        "{actions:?}"
    );
    assert!(has("order.create", &order_target), "{actions:?}");
    assert!(has("order.hold", &order_target), "{actions:?}");
    assert!(has("approval.hold", &approval_target), "{actions:?}");
    assert!(has("approval.approve", &approval_target), "{actions:?}");
    assert!(has("approval.execute", &approval_target), "{actions:?}");
    assert!(has("order.place", &order_target), "{actions:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearing_fault_ends_in_an_approved_order_on_the_in_process_bus() {
    a_bearing_fault_ends_in_a_placed_order_a_supervisor_approved(Bus::InProcess).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearing_fault_ends_in_an_approved_order_on_nats_jetstream() {
    a_bearing_fault_ends_in_a_placed_order_a_supervisor_approved(Bus::Nats).await;
}
