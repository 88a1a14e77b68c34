//! `cargo run --release -p fb-bench -- [READINGS]`: end-to-end ingest rates on this machine,
//! each next to the raw rate of the same rows written by a minimal direct loop, in one run.
//!
//! Workload: 100 machines × 5 sensors, readings arriving time-major (one reading per sensor per
//! second of event time), posted as JSON batches of 5,000 over 4 HTTP connections.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sqlx::Connection;
use time::OffsetDateTime;

use fb_server::settings::{Layers, Settings};
use fb_server::wire;

const MACHINES: usize = 100;
const SENSORS: [&str; 5] = ["temperature", "vibration", "pressure", "flow", "power"];
const BATCH: usize = 5_000;
const CONNECTIONS: usize = 4;
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Row {
    machine: usize,
    sensor: usize,
    ts: OffsetDateTime,
    value: f64,
}

fn workload(readings: usize) -> Vec<Row> {
    let base = OffsetDateTime::now_utc() - time::Duration::days(1);
    let per_tick = MACHINES * SENSORS.len();
    (0..readings)
        .map(|i| {
            let tick = i / per_tick;
            let within = i % per_tick;
            Row {
                machine: within / SENSORS.len(),
                sensor: within % SENSORS.len(),
                ts: base + time::Duration::seconds(tick as i64),
                value: (i % 1000) as f64 / 10.0,
            }
        })
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Starts the real server in-process on loopback, registers the machines, posts the workload.
async fn http_run(rows: &[Row], env: Vec<(String, String)>) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let mut env = env;
    env.push((
        "FB__SERVER__DATA_DIR".into(),
        dir.path().display().to_string(),
    ));
    env.push(("FB__SERVER__MAX_BODY_BYTES".into(), "16777216".into()));
    let settings = Settings::load(&Layers {
        env,
        ..Layers::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage = wire::open_storage(&settings).await?;
    let auth = wire::auth_service(&settings, &storage).await?;
    let (_, password) = auth
        .bootstrap_admin("admin")
        .await?
        .context("fresh store")?;
    let state = wire::http_state(&settings, &storage, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, fb_http::router(state)).into_future());

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let token = {
        let mut r = agent
            .post(&format!("{base}/api/v1/auth/login"))
            .send_json(serde_json::json!({"username": "admin", "password": password}))?;
        r.body_mut().read_json::<serde_json::Value>()?["access_token"]
            .as_str()
            .context("token")?
            .to_owned()
    };
    for m in 0..MACHINES {
        let sensors: Vec<_> = SENSORS
            .iter()
            .map(|s| serde_json::json!({"key": s, "kind": "other", "unit": "u", "physical_min": -1e9, "physical_max": 1e9}))
            .collect();
        let body = serde_json::json!({"id": format!("m{m}"), "name": format!("m{m}"), "machine_type": "bench", "location": {"site": "bench"}, "sensors": sensors});
        agent
            .post(&format!("{base}/api/v1/machines"))
            .header("authorization", &format!("Bearer {token}"))
            .send_json(body)?;
    }
    // Payloads are serialised before the clock starts: the client is not what is measured.
    let payloads: Vec<String> = rows
        .chunks(BATCH)
        .map(|chunk| {
            let items: Vec<serde_json::Value> = chunk
                .iter()
                .map(|r| serde_json::json!({"machine": format!("m{}", r.machine), "sensor": SENSORS[r.sensor], "ts": rfc3339(r.ts), "value": r.value}))
                .collect();
            serde_json::Value::Array(items).to_string()
        })
        .collect();
    let payloads = Arc::new(payloads);
    let start = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let payloads = payloads.clone();
            let (agent, base, token) = (agent.clone(), base.clone(), token.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                for payload in payloads.iter().skip(w).step_by(CONNECTIONS) {
                    let sent = Instant::now();
                    let mut r = agent
                        .post(&format!("{base}/api/v1/readings"))
                        .header("authorization", &format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .send(payload.as_bytes())
                        .unwrap();
                    let status = r.status().as_u16();
                    let body = r.body_mut().read_to_string().unwrap();
                    assert_eq!(status, 200, "{body}");
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    server.abort();
    storage.health.close().await;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(Measured {
        rate: rows.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

/// The same rows, written the minimal way: 10,000-row transactions of multi-row inserts into the
/// same key layout, no validation, no rollups.
async fn raw_sqlite(rows: &[Row]) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"] {
        sqlx::query(sqlx::AssertSqlSafe(pragma.to_owned()))
            .execute(&mut conn)
            .await?;
    }
    sqlx::query("CREATE TABLE readings (chunk INTEGER NOT NULL, series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (chunk, series, ts)) STRICT, WITHOUT ROWID")
        .execute(&mut conn)
        .await?;
    let per_statement = 1000;
    let sql = {
        let mut s = String::from("INSERT OR IGNORE INTO readings VALUES ");
        s.push_str(&vec!["(?,?,?,?)"; per_statement].join(","));
        s
    };
    let start = Instant::now();
    for txn_rows in rows.chunks(10_000) {
        let mut tx = conn.begin().await?;
        for part in txn_rows.chunks(per_statement) {
            let text = if part.len() == per_statement {
                sql.clone()
            } else {
                format!(
                    "INSERT OR IGNORE INTO readings VALUES {}",
                    vec!["(?,?,?,?)"; part.len()].join(",")
                )
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for r in part {
                let micros = (r.ts.unix_timestamp_nanos() / 1000) as i64;
                q = q
                    .bind(micros.div_euclid(3_600_000_000))
                    .bind((r.machine * SENSORS.len() + r.sensor) as i64)
                    .bind(micros)
                    .bind(r.value);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// The same rows through PostgreSQL COPY into a table keyed like ours, one stream.
async fn raw_postgres(rows: &[Row]) -> anyhow::Result<f64> {
    let schema = format!("fbbench_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(PG_URL)
        .await
        .context("PostgreSQL must run on 127.0.0.1:5432")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.readings (series bigint NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL, PRIMARY KEY (series, ts))"
    )))
    .execute(&mut conn)
    .await?;
    let start = Instant::now();
    for part in rows.chunks(100_000) {
        let mut text = String::with_capacity(part.len() * 48);
        for r in part {
            use std::fmt::Write;
            let _ = writeln!(
                text,
                "{}\t{}\t{}",
                r.machine * SENSORS.len() + r.sensor,
                rfc3339(r.ts),
                r.value
            );
        }
        let copy_sql = format!("COPY {schema}.readings (series, ts, value) FROM STDIN");
        let mut copy = conn.copy_in_raw(&copy_sql).await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
    }
    let rate = rows.len() as f64 / start.elapsed().as_secs_f64();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await?;
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let readings: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let rows = workload(readings);
    println!(
        "workload: {readings} readings, {MACHINES} machines x {} sensors, time-major; HTTP JSON batches of {BATCH} over {CONNECTIONS} connections",
        SENSORS.len()
    );

    let raw = raw_sqlite(&rows).await?;
    let http = http_run(&rows, Vec::new()).await?;
    println!(
        "HTTP JSON -> SQLite     {:>10.0} readings/s  (request p50 {:.1} ms, p99 {:.1} ms)  raw SQLite {:>10.0}/s  ratio {:.0} %",
        http.rate,
        http.p50_ms,
        http.p99_ms,
        raw,
        100.0 * http.rate / raw
    );

    let schema = format!("fbbench_{}", uuid::Uuid::now_v7().simple());
    let raw_pg = raw_postgres(&rows).await?;
    let pg_env = vec![
        ("FB__STORAGE__URL".into(), PG_URL.into()),
        ("FB__STORAGE__SCHEMA".into(), schema.clone()),
    ];
    let http_pg = http_run(&rows, pg_env).await?;
    fb_postgres::PgStore::drop_schema(PG_URL, &schema).await?;
    println!(
        "HTTP JSON -> PostgreSQL {:>10.0} readings/s  (request p50 {:.1} ms, p99 {:.1} ms)  raw COPY   {:>10.0}/s  ratio {:.0} %",
        http_pg.rate,
        http_pg.p50_ms,
        http_pg.p99_ms,
        raw_pg,
        100.0 * http_pg.rate / raw_pg
    );
    Ok(())
}
