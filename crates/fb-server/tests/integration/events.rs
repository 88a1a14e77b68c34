//! The live event stream over a real loopback socket, with a real WebSocket client: what it
//! carries (alerts raised by ingested readings, subscribed readings, machine health), how a
//! browser authenticates, and what it refuses (foreign origins, missing credentials, one
//! stream too many, oversize messages).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use fb_core::identity::Role;
use fb_server::wire;

use crate::support::TestApp;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for one expected message: far beyond what any step takes, so that a missing
/// message fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// The app's router served on a loopback port, as `serve` does it (with each connection's peer).
pub(crate) async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    addr
}

/// How a client opens the stream.
#[derive(Default)]
pub(crate) struct Handshake<'a> {
    bearer: Option<&'a str>,
    subprotocols: Option<String>,
    origin: Option<&'a str>,
}

impl<'a> Handshake<'a> {
    /// As a program opens it: the credential in the Authorization header.
    pub(crate) fn bearer(token: &'a str) -> Self {
        Self {
            bearer: Some(token),
            ..Self::default()
        }
    }
}

async fn open(
    addr: SocketAddr,
    how: Handshake<'_>,
) -> Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    let mut request = format!("ws://{addr}/api/v1/events")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    if let Some(token) = how.bearer {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        headers.insert("authorization", value);
    }
    if let Some(protocols) = how.subprotocols {
        let value = HeaderValue::from_str(&protocols).unwrap();
        headers.insert("sec-websocket-protocol", value);
    }
    if let Some(origin) = how.origin {
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio_tungstenite::connect_async(request).await
}

/// Opens a stream that must be accepted, and reads its `hello`.
pub(crate) async fn open_ok(addr: SocketAddr, how: Handshake<'_>) -> (Socket, Value) {
    let (mut socket, _) = open(addr, how).await.expect("the stream opens");
    let hello = next_message(&mut socket).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (socket, hello)
}

/// The status and error code of a refused handshake.
pub(crate) async fn refused(addr: SocketAddr, how: Handshake<'_>) -> (StatusCode, String) {
    match open(addr, how).await {
        Err(WsError::Http(response)) => {
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            let code = body["error"]["code"].as_str().unwrap().to_owned();
            (
                StatusCode::from_u16(response.status().as_u16()).unwrap(),
                code,
            )
        }
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("the stream opened"),
    }
}

/// The next JSON message (pings are answered by the client library and skipped).
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message within the patience")
            .expect("the stream is open")
            .expect("a readable message");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next message of type `kind`, skipping others (health arrives every few seconds).
async fn next_of_type(socket: &mut Socket, kind: &str) -> Value {
    let wanted = async {
        loop {
            let message = next_message(socket).await;
            if message["type"] == kind {
                return message;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wanted)
        .await
        .unwrap_or_else(|_| panic!("no {kind} message within the patience"))
}

/// The close frame that ends the stream.
async fn closed_with(socket: &mut Socket) -> CloseFrame {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the close within the patience");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(Message::Close(None))) | None => panic!("closed without a close frame"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the stream failed instead of closing: {e}"),
        }
    }
}

async fn send(socket: &mut Socket, request: Value) {
    socket
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
}

pub(crate) fn press(id: &str) -> Value {
    json!({
        "id": id, "name": "Press", "machine_type": "hydraulic_press", "machine_class": "class2",
        "location": {"site": "plant-a", "area": "stamping", "line": "line-1"},
        "sensors": [{"key": "temperature", "kind": "temperature", "unit": "°C",
                     "physical_min": -40, "physical_max": 250, "warning_high": 80, "critical_high": 95}]
    })
}

pub(crate) fn reading(machine: &str, seconds_ago: i64, value: f64) -> Value {
    let ts = (OffsetDateTime::now_utc() - time::Duration::seconds(seconds_ago))
        .format(&Rfc3339)
        .unwrap();
    json!({"machine": machine, "sensor": "temperature", "ts": ts, "value": value})
}

#[tokio::test]
async fn ingested_readings_raise_an_alert_that_arrives_with_the_subscribed_readings_and_health() {
    let app = TestApp::new().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let detection =
        wire::spawn_detection(&app.settings, &app.storage, &app.state, stopped).unwrap();
    let admin = app.admin_token().await;
    for id in ["press-01", "press-02"] {
        let created = app.post("/api/v1/machines", Some(&admin), press(id)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let viewer = app.token_for("vera", Role::Viewer).await;
    let addr = serve(&app).await;
    let (mut socket, hello) = open_ok(addr, Handshake::bearer(&viewer)).await;
    assert_eq!(hello["protocol"], "fb.v1");
    assert_eq!(hello["principal"], "user:vera");
    assert_eq!(hello["limits"]["max_subscribed_machines"], 100);

    // A machine that does not exist is named, and nothing is subscribed.
    send(
        &mut socket,
        json!({"type": "subscribe", "machines": ["press-01", "press-99"]}),
    )
    .await;
    let error = next_of_type(&mut socket, "error").await;
    assert_eq!(error["code"], "machine_not_found", "{error}");
    assert_eq!(error["details"][0]["field"], "machines[1]");
    send(
        &mut socket,
        json!({"type": "subscribe", "machines": ["press-01"]}),
    )
    .await;
    let subscribed = next_of_type(&mut socket, "subscribed").await;
    assert_eq!(subscribed["machines"], json!(["press-01"]));

    // Two critical readings in a row on press-01, and a calm one on press-02 (not subscribed).
    let batch = json!([
        reading("press-01", 2, 120.0),
        reading("press-01", 1, 121.5),
        reading("press-02", 1, 40.0)
    ]);
    let ingested = app.post("/api/v1/readings", Some(&admin), batch).await;
    assert_eq!(ingested.body["accepted"], 3, "{}", ingested.body);

    let (mut readings, mut opened) = (None, None);
    let both = async {
        while readings.is_none() || opened.is_none() {
            let message = next_message(&mut socket).await;
            match message["type"].as_str().unwrap() {
                "readings" => readings = Some(message),
                // Silent sensors raise no_data alerts of their own on a slow machine.
                "alert.opened" if message["alert"]["kind"] == "overheating" => {
                    opened = Some(message)
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, both)
        .await
        .unwrap_or_else(|_| panic!("readings: {readings:?}, alert: {opened:?}"));
    let readings = readings.unwrap();
    assert_eq!(readings["machine"], "press-01", "only subscribed machines");
    let values: Vec<f64> = readings["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [120.0, 121.5]);
    assert_eq!(readings["readings"][0]["sensor"], "temperature");
    let alert = &opened.unwrap()["alert"];
    assert_eq!(alert["machine"], "press-01");
    assert_eq!(alert["kind"], "overheating");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["status"], "open");

    // Detection recomputes health every few seconds; press-01 is in its critical zone.
    let health = next_of_type(&mut socket, "health").await;
    let press_01 = health["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["machine"] == "press-01")
        .unwrap_or_else(|| panic!("no press-01 in {health}"));
    assert!(press_01["health"].as_f64().unwrap() < 70.0, "{health}");

    // Acknowledging the alert is announced too.
    let operator = app.token_for("otto", Role::Operator).await;
    let acked = app
        .post(
            &format!(
                "/api/v1/alerts/{}/acknowledge",
                alert["id"].as_str().unwrap()
            ),
            Some(&operator),
            json!({"comment": "on it"}),
        )
        .await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.body);
    let acknowledged = next_of_type(&mut socket, "alert.acknowledged").await;
    assert_eq!(acknowledged["alert"]["acknowledged"]["by"], "user:otto");

    send(
        &mut socket,
        json!({"type": "unsubscribe", "machines": ["press-01"]}),
    )
    .await;
    let subscribed = next_of_type(&mut socket, "subscribed").await;
    assert_eq!(subscribed["machines"], json!([]));

    stop.send(true).unwrap();
    detection.await.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn browsers_authenticate_with_a_subprotocol_and_foreign_origins_are_refused() {
    let app = TestApp::with_env(vec![(
        "FB__SERVER__ALLOWED_ORIGINS".into(),
        r#"["https://dashboard.example"]"#.into(),
    )])
    .await;
    let viewer = app.token_for("vera", Role::Viewer).await;
    let addr = serve(&app).await;
    let own_origin = format!("http://{addr}");

    // The token as a subprotocol next to fb.v1; only fb.v1 is echoed.
    let (mut socket, response) = open(
        addr,
        Handshake {
            subprotocols: Some(format!("fb.v1, fb.bearer.{viewer}")),
            origin: Some(&own_origin),
            ..Handshake::default()
        },
    )
    .await
    .expect("the stream opens");
    assert_eq!(response.headers()["sec-websocket-protocol"], "fb.v1");
    let hello = next_message(&mut socket).await;
    assert_eq!(hello["principal"], "user:vera");
    // An origin from the settings is accepted as well.
    open_ok(
        addr,
        Handshake {
            bearer: Some(&viewer),
            origin: Some("https://dashboard.example"),
            ..Handshake::default()
        },
    )
    .await;

    for origin in ["http://evil.example", "https://dashboard.example:8443"] {
        let refusal = refused(
            addr,
            Handshake {
                subprotocols: Some(format!("fb.v1, fb.bearer.{viewer}")),
                origin: Some(origin),
                ..Handshake::default()
            },
        )
        .await;
        assert_eq!(
            refusal,
            (StatusCode::FORBIDDEN, "origin_not_allowed".into()),
            "{origin}"
        );
    }
    // No credential at all; a credential but not the stream's protocol; a bad token.
    assert_eq!(
        refused(addr, Handshake::default()).await,
        (StatusCode::UNAUTHORIZED, "missing_credentials".into())
    );
    assert_eq!(
        refused(
            addr,
            Handshake {
                subprotocols: Some(format!("graphql-ws, fb.bearer.{viewer}")),
                ..Handshake::default()
            }
        )
        .await,
        (StatusCode::BAD_REQUEST, "invalid_parameter".into())
    );
    assert_eq!(
        refused(
            addr,
            Handshake {
                subprotocols: Some("fb.v1, fb.bearer.not-a-token".into()),
                ..Handshake::default()
            }
        )
        .await,
        (StatusCode::UNAUTHORIZED, "invalid_token".into())
    );
    // The subprotocol is read on WebSocket handshakes only, and the route wants one.
    let plain = app.get("/api/v1/events", Some(&viewer)).await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    assert_eq!(plain.code(), "websocket_required");

    // Refusals are in the audit log like any refused call.
    let admin = app.admin_token().await;
    let audit = app
        .get(
            "/api/v1/audit?action=event.stream&outcome=denied",
            Some(&admin),
        )
        .await;
    let errors: Vec<&str> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["details"]["error"].as_str().unwrap())
        .collect();
    assert!(errors.contains(&"origin_not_allowed"), "{errors:?}");
    assert!(errors.contains(&"missing_credentials"), "{errors:?}");
    app.finish().await;
}

#[tokio::test]
async fn one_stream_over_the_principals_limit_is_refused_with_429_before_the_handshake() {
    let app = TestApp::with_env(vec![(
        "FB__EVENTS__MAX_CONNECTIONS_PER_PRINCIPAL".into(),
        "2".into(),
    )])
    .await;
    let vera = app.token_for("vera", Role::Viewer).await;
    let otto = app.token_for("otto", Role::Operator).await;
    let addr = serve(&app).await;
    let as_vera = || Handshake::bearer(&vera);
    let (mut first, _) = open_ok(addr, as_vera()).await;
    let (_second, _) = open_ok(addr, as_vera()).await;
    assert_eq!(
        refused(addr, as_vera()).await,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_connections".into())
    );
    // Another user has places of their own.
    open_ok(addr, Handshake::bearer(&otto)).await;
    let metrics = app.state.metrics.render();
    assert!(metrics.contains("fb_ws_connections"), "{metrics}");

    // A closed stream frees its place once the server has seen the close.
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let mut reopened = None;
    for _ in 0..200 {
        match open(addr, as_vera()).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(WsError::Http(response)) if response.status() == 429 => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(reopened.is_some(), "the place was never freed");
    app.finish().await;
}

#[tokio::test]
async fn bad_client_messages_are_answered_and_oversize_ones_close_the_stream() {
    let app = TestApp::with_env(vec![
        ("FB__EVENTS__MAX_CLIENT_MESSAGE_BYTES".into(), "512".into()),
        ("FB__SERVER__MAX_JSON_DEPTH".into(), "4".into()),
    ])
    .await;
    let viewer = app.token_for("vera", Role::Viewer).await;
    let addr = serve(&app).await;
    let (mut socket, _) = open_ok(addr, Handshake::bearer(&viewer)).await;
    // Malformed, unknown and too deep requests get an error; the stream stays open.
    socket.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next_message(&mut socket).await["code"], "invalid_json");
    send(&mut socket, json!({"type": "dance"})).await;
    let unknown = next_message(&mut socket).await;
    assert_eq!(unknown["code"], "invalid_json");
    assert_eq!(unknown["details"][0]["field"], "type", "{unknown}");
    send(
        &mut socket,
        json!({"type": "subscribe", "machines": [[[["press-01"]]]]}),
    )
    .await;
    let deep = next_message(&mut socket).await;
    assert_eq!(deep["type"], "error");
    assert_eq!(deep["code"], "json_too_deep");
    send(&mut socket, json!({"type": "subscribe", "machines": []})).await;
    let empty = next_message(&mut socket).await;
    assert_eq!(empty["code"], "invalid_field");
    assert_eq!(empty["details"][0]["field"], "machines");

    socket.send(Message::text("x".repeat(600))).await.unwrap();
    let frame = closed_with(&mut socket).await;
    assert_eq!(u16::from(frame.code), 1009, "{frame:?}");
    assert!(frame.reason.contains("512"), "{frame:?}");
    app.finish().await;
}

#[tokio::test]
async fn streams_are_told_to_go_away_when_the_server_drains() {
    let app = TestApp::new().await;
    let viewer = app.token_for("vera", Role::Viewer).await;
    let addr = serve(&app).await;
    let (mut socket, _) = open_ok(addr, Handshake::bearer(&viewer)).await;
    app.state.start_draining();
    let frame = closed_with(&mut socket).await;
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    app.finish().await;
}
