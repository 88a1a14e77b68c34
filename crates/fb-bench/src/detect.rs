//! `fb-bench detect`: what detection costs and how fast it alerts.
//!
//! 1. **Cost per reading**, one core: the simulated plant (100 machines × 5 sensors, random
//!    faults at the simulator's default rate) through [`MachineDetector`], every detector on,
//!    then without the novelty detector; the first 10 minutes (the warm-up) are not timed.
//!    Bytes of detection state per sensor beside it.
//! 2. **Reading → alert latency** through the running server: 1,000 machines with a critical
//!    temperature limit; for each, one reading over the limit, then the second one (a critical
//!    limit needs two in a row) is posted over HTTP and the clock runs until the alert's
//!    `Opened` event is out — ingest, the store's commit, detection, the alert's own write.
//!    Once on an idle server, once while the 100 benchmark machines stream 10,000 readings/s
//!    in the background. The HTTP answer comes once the reading is stored (and handed to
//!    detection), so the time from the answer to the alert is detection's and the alert's own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fb_app::alerts::AlertEvent;
use fb_core::plant::to_micros;
use fb_detect::pipeline::{DetectionConfig, MachineDetector};
use time::OffsetDateTime;

use super::{MACHINES, SENSORS, Server, percentiles};

const PLANT: usize = 100;
const WARMUP_SECS: i64 = 600;
const TIMED_SECS: i64 = 1800;
const LATENCY_MACHINES: usize = 1000;
const BACKGROUND_RATE: usize = 10_000;

pub(crate) async fn run() -> anyhow::Result<()> {
    for novelty in [true, false] {
        let (ns, bytes_per_sensor, readings) = cost(novelty)?;
        println!(
            "detection cost{}: {ns:>6.0} ns per reading on one core ({readings} readings timed), {bytes_per_sensor:.0} bytes per sensor",
            if novelty { "" } else { " without novelty" }
        );
    }
    for background in [false, true] {
        let l = latency(background).await?;
        let load = if background {
            format!("{BACKGROUND_RATE} readings/s in the background")
        } else {
            "idle server".to_owned()
        };
        println!(
            "reading -> alert through the server ({} alerts, {load}): p50 {:.2} ms, p99 {:.2} ms; of which HTTP answer (reading stored) p50 {:.2} ms, p99 {:.2} ms; alert after the answer p50 {:.2} ms, p99 {:.2} ms",
            l.alerts, l.total.0, l.total.1, l.http.0, l.http.1, l.after.0, l.after.1
        );
    }
    Ok(())
}

fn cost(novelty: bool) -> anyhow::Result<(f64, f64, usize)> {
    let start = OffsetDateTime::now_utc() - time::Duration::days(1);
    let machines = fb_sim::plant_machines(PLANT, start);
    let cfg = DetectionConfig {
        novelty,
        ..DetectionConfig::default()
    };
    let mut detectors = machines
        .iter()
        .map(|(m, _)| MachineDetector::new(m, &cfg))
        .collect::<Result<Vec<_>, _>>()?;
    let index: HashMap<String, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (m.id.0.clone(), i))
        .collect();
    let mut sim = fb_sim::Simulator::new(7, &machines, start);
    let mut signals = Vec::new();
    let mut timed = Duration::ZERO;
    let mut readings = 0usize;
    let mut resolved = Vec::new();
    for second in 0..WARMUP_SECS + TIMED_SECS {
        resolved.clear();
        for r in sim.step(time::Duration::seconds(1)) {
            let m = index[&r.machine.0];
            let s = detectors[m].sensor_index(&r.sensor.0).unwrap_or(0);
            resolved.push((m, s, to_micros(r.ts), r.value));
        }
        let began = Instant::now();
        for &(m, s, ts, value) in &resolved {
            std::hint::black_box(detectors[m].observe(s, ts, value, &mut signals));
        }
        if second >= WARMUP_SECS {
            timed += began.elapsed();
            readings += resolved.len();
        }
        signals.clear();
    }
    let sensors: usize = machines.iter().map(|(m, _)| m.sensors.len()).sum();
    let bytes: usize = detectors.iter().map(MachineDetector::memory_bytes).sum();
    Ok((
        timed.as_nanos() as f64 / readings.max(1) as f64,
        bytes as f64 / sensors as f64,
        readings,
    ))
}

struct Latency {
    alerts: usize,
    /// (p50, p99) in ms.
    total: (f64, f64),
    http: (f64, f64),
    after: (f64, f64),
}

async fn latency(with_background: bool) -> anyhow::Result<Latency> {
    let server = Server::start(Vec::new()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let detection = fb_server::wire::spawn_detection(
        &server.settings,
        &server.storage,
        &server.state,
        stop_rx,
    )?;
    for i in 0..LATENCY_MACHINES {
        let body = serde_json::json!({
            "id": format!("lat-{i}"), "name": format!("lat {i}"), "machine_type": "bench",
            "location": {"site": "bench"},
            "sensors": [{"key": "temperature", "kind": "temperature", "unit": "C",
                "physical_min": -40.0, "physical_max": 250.0,
                "warning_high": 90.0, "critical_high": 100.0}]
        });
        let r = server
            .agent
            .post(&format!("{}/api/v1/machines", server.base))
            .header("authorization", &format!("Bearer {}", server.token))
            .send_json(body)?;
        anyhow::ensure!(r.status().is_success(), "cannot register lat-{i}");
    }
    let background = with_background.then(|| background_load(&server));
    let mut events = server.state.alerts.subscribe();
    let mut latencies = Vec::with_capacity(LATENCY_MACHINES);
    let mut http = Vec::with_capacity(LATENCY_MACHINES);
    let mut after = Vec::with_capacity(LATENCY_MACHINES);
    for i in 0..LATENCY_MACHINES {
        let machine = format!("lat-{i}");
        post(&server, &machine, 120.0).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        post(&server, &machine, 121.0).await?;
        let answered = sent.elapsed().as_secs_f64() * 1000.0;
        http.push(answered);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await?? {
                AlertEvent::Opened(a) if a.machine.0 == machine => break,
                _ => {}
            }
        }
        let total = sent.elapsed().as_secs_f64() * 1000.0;
        latencies.push(total);
        after.push((total - answered).max(0.0));
    }
    let _ = stop_tx.send(true);
    if let Some(background) = background {
        background.stop();
    }
    let _ = detection.await;
    server.stop().await;
    Ok(Latency {
        alerts: LATENCY_MACHINES,
        total: percentiles(latencies),
        http: percentiles(http),
        after: percentiles(after),
    })
}

async fn post(server: &Server, machine: &str, value: f64) -> anyhow::Result<()> {
    let (agent, base, token) = (
        server.agent.clone(),
        server.base.clone(),
        server.token.clone(),
    );
    let body = serde_json::json!([{"machine": machine, "sensor": "temperature",
        "ts": super::rfc3339(OffsetDateTime::now_utc()), "value": value}]);
    tokio::task::spawn_blocking(move || {
        let r = agent
            .post(&format!("{base}/api/v1/readings"))
            .header("authorization", &format!("Bearer {token}"))
            .send_json(body)?;
        anyhow::ensure!(r.status().is_success(), "reading refused: {}", r.status());
        Ok(())
    })
    .await?
}

struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The benchmark machines' readings at `BACKGROUND_RATE`, in batches of one second's worth
/// every 100 ms.
fn background_load(server: &Server) -> Background {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (agent, base, token, flag) = (
        server.agent.clone(),
        server.base.clone(),
        server.token.clone(),
        stop.clone(),
    );
    let thread = std::thread::spawn(move || {
        let per_batch = BACKGROUND_RATE / 10;
        let mut n = 0usize;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let now = OffsetDateTime::now_utc();
            let batch: Vec<_> = (0..per_batch)
                .map(|k| {
                    let i = n + k;
                    let reading = i % (MACHINES * SENSORS.len());
                    serde_json::json!({
                        "machine": format!("m{}", reading / SENSORS.len()),
                        "sensor": SENSORS[reading % SENSORS.len()],
                        "ts": super::rfc3339(now + time::Duration::microseconds(k as i64)),
                        // Noise around a level: healthy sensors, which raise no alert.
                        "value": 50.0 + ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 100.0,
                    })
                })
                .collect();
            n += per_batch;
            let _ = agent
                .post(&format!("{base}/api/v1/readings"))
                .header("authorization", &format!("Bearer {token}"))
                .send_json(serde_json::Value::Array(batch));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Background { stop, thread }
}
