//! The client against a local fake model server (axum on 127.0.0.1:0) speaking the same wire
//! formats: answers used, slow answers cut at the budget, 5xx opening the breaker, bad JSON
//! refused, the API key sent and never shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use fb_core::model::ModelKind;
use fb_core::ports::{InferenceError, InferenceRequest, RemoteInference};
use fb_inference::{ApiKey, Options, Protocol, RemoteModelServer};
use fb_outbound::{CircuitState, UrlPolicy};

/// How the fake answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    Slow,
    Fail,
    Garbage,
}

/// (path, authorization header, body) of each request the fake got.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

#[derive(Clone)]
struct Fake {
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<AtomicUsize>,
    seen: Seen,
}

async fn answer(fake: &Fake, path: String, headers: HeaderMap, body: Value) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    fake.seen
        .lock()
        .unwrap()
        .push((path.clone(), auth, body.clone()));
    let behaviour = *fake.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Behaviour::Fail => return (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response(),
        Behaviour::Garbage => {
            return (StatusCode::OK, "{\"outputs\": [{\"data\": ").into_response();
        }
        Behaviour::Answer => {}
    }
    if path.starts_with("/v1/") {
        // One value per row: 0.1 × the row's first feature.
        let user: Value =
            serde_json::from_str(body["messages"][1]["content"].as_str().unwrap()).unwrap();
        let values: Vec<f64> = user["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| 0.1 * r[0].as_f64().unwrap())
            .collect();
        let content = serde_json::to_string(&values).unwrap();
        return axum::Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
            .into_response();
    }
    let input = &body["inputs"][0];
    let columns = input["shape"][1].as_u64().unwrap() as usize;
    let values: Vec<f64> = input["data"]
        .as_array()
        .unwrap()
        .chunks(columns)
        .map(|r| 0.1 * r[0].as_f64().unwrap())
        .collect();
    axum::Json(json!({
        "model_name": path,
        "outputs": [{"name": "prediction", "shape": [values.len()], "datatype": "FP64", "data": values}]
    }))
    .into_response()
}

async fn start(behaviour: Behaviour) -> (Fake, String) {
    let fake = Fake {
        behaviour: Arc::new(Mutex::new(behaviour)),
        calls: Arc::default(),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/v2/models/{name}/infer",
            post(
                |State(f): State<Fake>,
                 Path(name): Path<String>,
                 h: HeaderMap,
                 axum::Json(b): axum::Json<Value>| async move {
                    answer(&f, format!("/v2/models/{name}/infer"), h, b).await
                },
            ),
        )
        .route(
            "/v1/chat/completions",
            post(
                |State(f): State<Fake>, h: HeaderMap, axum::Json(b): axum::Json<Value>| async move {
                    answer(&f, "/v1/chat/completions".into(), h, b).await
                },
            ),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, format!("http://{addr}"))
}

/// A client with a budget far above any answer's time on a loaded machine, so that only the
/// slow fake is ever cut off.
fn client(url: &str, protocol: Protocol) -> RemoteModelServer {
    client_with_budget(url, protocol, Duration::from_secs(5))
}

fn client_with_budget(url: &str, protocol: Protocol, budget: Duration) -> RemoteModelServer {
    let url = UrlPolicy::internal()
        .with_schemes(&["http", "https"])
        .check("prediction.remote.url", url)
        .unwrap();
    RemoteModelServer::new(Options {
        url,
        protocol,
        timeout: budget,
        api_key: Some(ApiKey::new("sk-test-secret")),
    })
    .unwrap()
}

const FEATURES: [&str; 2] = ["vibration.mean5", "temperature.last"];

fn request<'a>(features: &'a [String], values: &'a [f64]) -> InferenceRequest<'a> {
    InferenceRequest {
        model: "failure-centrifugal_pump",
        kind: ModelKind::Failure,
        features,
        values,
    }
}

#[tokio::test]
async fn a_kserve_v2_answer_is_one_value_per_row() {
    let (fake, url) = start(Behaviour::Answer).await;
    let remote = client(&url, Protocol::KServeV2);
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let values = [2.0, 50.0, 4.0, 60.0, 8.0, 70.0];
    let answer = remote.infer(request(&features, &values)).await.unwrap();
    assert_eq!(answer.len(), 3);
    for (got, want) in answer.iter().zip([0.2, 0.4, 0.8]) {
        assert!((got - want).abs() < 1e-12, "{answer:?}");
    }
    let (path, auth, body) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v2/models/failure-centrifugal_pump/infer");
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-secret"));
    assert_eq!(body["inputs"][0]["shape"], json!([3, 2]));
    assert_eq!(body["inputs"][0]["datatype"], "FP64");
    assert_eq!(
        body["inputs"][0]["parameters"]["feature_names"],
        json!(FEATURES)
    );
    // A second call reuses the connection and works the same.
    assert_eq!(
        remote
            .infer(request(&features, &values))
            .await
            .unwrap()
            .len(),
        3
    );
    // The key is never shown.
    assert!(!format!("{remote:?}").contains("sk-test-secret"));
}

#[tokio::test]
async fn an_openai_compatible_endpoint_answers_in_a_chat_message() {
    let (fake, url) = start(Behaviour::Answer).await;
    let remote = client(&url, Protocol::OpenAi);
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let answer = remote
        .infer(request(&features, &[3.0, 50.0, 6.0, 60.0]))
        .await
        .unwrap();
    assert_eq!(answer.len(), 2);
    assert!((answer[1] - 0.6).abs() < 1e-12, "{answer:?}");
    let (path, _, body) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(body["model"], "failure-centrifugal_pump");
    assert_eq!(body["temperature"], 0);
}

#[tokio::test]
async fn a_slow_answer_is_not_waited_for() {
    let (_fake, url) = start(Behaviour::Slow).await;
    let remote = client_with_budget(&url, Protocol::KServeV2, Duration::from_millis(50));
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let error = remote
        .infer(request(&features, &[1.0, 2.0]))
        .await
        .unwrap_err();
    assert_eq!(error, InferenceError::Timeout);
}

#[tokio::test]
async fn server_errors_fail_the_call_and_open_the_breaker() {
    let (fake, url) = start(Behaviour::Fail).await;
    let remote = client(&url, Protocol::KServeV2);
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let error = remote
        .infer(request(&features, &[1.0, 2.0]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InferenceError::Failed(why) if why.contains("503")),
        "{error:?}"
    );
    assert!(!error.to_string().contains("sk-test-secret"));
    // Half of the last calls failed (at least five): the server is not asked any more.
    for _ in 0..5 {
        let _ = remote.infer(request(&features, &[1.0, 2.0])).await;
    }
    assert_eq!(remote.circuit_state(), CircuitState::Open);
    let asked = fake.calls.load(Ordering::SeqCst);
    assert_eq!(
        remote
            .infer(request(&features, &[1.0, 2.0]))
            .await
            .unwrap_err(),
        InferenceError::CircuitOpen
    );
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        asked,
        "not asked while open"
    );
    // Even once it answers again, the circuit stays open until its 30 s are over.
    *fake.behaviour.lock().unwrap() = Behaviour::Answer;
    assert_eq!(
        remote
            .infer(request(&features, &[1.0, 2.0]))
            .await
            .unwrap_err(),
        InferenceError::CircuitOpen
    );
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_refused() {
    let (_fake, url) = start(Behaviour::Garbage).await;
    let remote = client(&url, Protocol::KServeV2);
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let error = remote
        .infer(request(&features, &[1.0, 2.0]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InferenceError::BadAnswer(why) if why.contains("not a KServe v2 answer")),
        "{error:?}"
    );
    // The server answered: not a failure of the dependency.
    assert_eq!(remote.circuit_state(), CircuitState::Closed);
}
