//! `factorybrain simulate`: the simulated plant as an external load generator, sending to a
//! running server over HTTP or to an MQTT broker.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use fb_sim::{Simulator, plant_machines};

pub(crate) struct Args {
    pub machines: usize,
    /// Samples per second: each sends one reading per sensor of every machine.
    pub rate: f64,
    pub duration: Duration,
    pub target: String,
    pub api_key: Option<String>,
    pub seed: u64,
    pub topic_prefix: String,
    /// (user name, password) for an mqtt:// target.
    pub mqtt_credentials: Option<(String, String)>,
}

/// "90", "90s", "5m", "1h".
pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("'{raw}' is not a duration like 90s, 5m or 1h")),
    };
    Ok(Duration::from_secs(secs))
}

/// How long the MQTT sink waits for the broker to accept its connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[allow(clippy::print_stdout)] // Progress is the command's output.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate <= 1000.0,
        "--rate must be between 0 and 1000 samples per second"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.machines),
        "--machines must be between 1 and 10000"
    );
    let start = time::OffsetDateTime::now_utc();
    let machines = plant_machines(args.machines, start);
    let mut sim = Simulator::new(args.seed, &machines, start);
    let mut sink = Sink::connect(&args, &machines).await?;
    let tick = Duration::from_secs_f64(1.0 / args.rate);
    let began = Instant::now();
    let mut sent = 0usize;
    let mut ticker = tokio::time::interval(tick);
    while began.elapsed() < args.duration {
        ticker.tick().await;
        let now = time::OffsetDateTime::now_utc();
        let readings = sim.step(now - sim.now());
        sent += sink.send(&readings).await?;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "sent {sent} readings from {} machines in {secs:.1} s ({:.0}/s); {} faults injected",
        args.machines,
        sent as f64 / secs,
        sim.faults().len()
    );
    Ok(())
}

enum Sink {
    Http {
        agent: ureq::Agent,
        url: String,
        auth: String,
    },
    Mqtt {
        client: rumqttc::AsyncClient,
        prefix: String,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Sink {
    async fn connect(
        args: &Args,
        machines: &[(fb_core::plant::Machine, fb_sim::MachineKind)],
    ) -> anyhow::Result<Self> {
        if let Some(base) = args
            .target
            .strip_prefix("http://")
            .map(|rest| format!("http://{}", rest.trim_end_matches('/')))
        {
            let key = args
                .api_key
                .clone()
                .context("--api-key (or FB_API_KEY) is needed for an http:// target")?;
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let auth = format!("Bearer {key}");
            // Register the machines; ones that exist already are kept as they are.
            for (m, _) in machines {
                let sensors: Vec<Value> = m
                    .sensors
                    .iter()
                    .map(|s| json!({"key": s.key.0, "kind": "other", "unit": s.unit, "physical_min": s.physical_min,
                                    "physical_max": s.physical_max, "warning_high": s.warning_high, "critical_high": s.critical_high}))
                    .collect();
                let body = json!({"id": m.id.0, "name": m.name, "machine_type": m.machine_type,
                                  "location": {"site": m.location.site, "area": m.location.area, "line": m.location.line},
                                  "sensors": sensors});
                let (agent, url, auth) = (
                    agent.clone(),
                    format!("{base}/api/v1/machines"),
                    auth.clone(),
                );
                let status = tokio::task::spawn_blocking(move || {
                    agent
                        .post(&url)
                        .header("authorization", &auth)
                        .send_json(body)
                        .map(|r| r.status().as_u16())
                })
                .await??;
                anyhow::ensure!(
                    status == 201 || status == 409,
                    "registering {} answered {status}",
                    m.id
                );
            }
            return Ok(Sink::Http {
                agent,
                url: format!("{base}/api/v1/readings"),
                auth,
            });
        }
        if let Some(rest) = args.target.strip_prefix("mqtt://") {
            let (host, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .map_or((rest, 1883), |(h, p)| (h, p.parse().unwrap_or(1883)));
            // A device may only use its own client ids (its name, or its name, `:` and more).
            let client_id = match &args.mqtt_credentials {
                Some((username, _)) => {
                    format!("{username}:simulate-{}", uuid::Uuid::now_v7().simple())
                }
                None => format!("fb-simulate-{}", uuid::Uuid::now_v7().simple()),
            };
            let mut options = rumqttc::MqttOptions::new(client_id, host, port);
            options.set_keep_alive(Duration::from_secs(30));
            if let Some((username, password)) = &args.mqtt_credentials {
                options.set_credentials(username.clone(), password.clone());
            }
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10_000);
            // Wait for the broker's answer, so that refused credentials stop the run with a
            // message instead of publishing into a connection that is not there.
            tokio::time::timeout(CONNECT_TIMEOUT, async {
                loop {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                            anyhow::ensure!(
                                ack.code == rumqttc::ConnectReturnCode::Success,
                                "the broker refused the connection ({:?}); check --mqtt-username and --mqtt-password",
                                ack.code
                            );
                            return Ok(());
                        }
                        Ok(_) => {}
                        Err(e) => anyhow::bail!(
                            "cannot connect to the broker at {host}:{port} ({e}); a broker that \
                             needs a login hangs up without one: see --mqtt-username and --mqtt-password"
                        ),
                    }
                }
            })
            .await
            .context("the broker did not answer within 10 s")??;
            let task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            return Ok(Sink::Mqtt {
                client,
                prefix: args.topic_prefix.clone(),
                task,
            });
        }
        anyhow::bail!("--target must be http://host:port or mqtt://host:port")
    }

    async fn send(&mut self, readings: &[fb_core::plant::Reading]) -> anyhow::Result<usize> {
        match self {
            Sink::Http { agent, url, auth } => {
                let body: Vec<Value> = readings
                    .iter()
                    .map(|r| json!({"machine": r.machine.0, "sensor": r.sensor.0, "ts": rfc3339(r.ts), "value": r.value}))
                    .collect();
                let (agent, url, auth) = (agent.clone(), url.clone(), auth.clone());
                let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
                    let mut r = agent
                        .post(&url)
                        .header("authorization", &auth)
                        .send_json(Value::Array(body))?;
                    let status = r.status().as_u16();
                    let body: Value = r.body_mut().read_json()?;
                    anyhow::ensure!(status == 200, "ingest answered {status}: {body}");
                    Ok(body)
                })
                .await??;
                Ok(answer["accepted"].as_u64().unwrap_or(0) as usize
                    + answer["duplicates"].as_u64().unwrap_or(0) as usize)
            }
            Sink::Mqtt { client, prefix, .. } => {
                // One message per machine: all its sensors with one timestamp.
                let mut per_machine: std::collections::BTreeMap<
                    &str,
                    serde_json::Map<String, Value>,
                > = Default::default();
                for r in readings {
                    let entry = per_machine.entry(r.machine.0.as_str()).or_default();
                    entry.insert("ts".into(), json!(rfc3339(r.ts)));
                    entry.insert(r.sensor.0.clone(), json!(r.value));
                }
                for (machine, object) in per_machine {
                    let topic = format!("{prefix}/demo-plant/{machine}");
                    client
                        .publish(
                            topic,
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            Value::Object(object).to_string(),
                        )
                        .await?;
                }
                Ok(readings.len())
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Mqtt { task, .. } = self {
            task.abort();
        }
    }
}
