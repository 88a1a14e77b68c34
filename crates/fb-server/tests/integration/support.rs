//! A test application: real settings, a real store (SQLite in a temp dir, or a fresh PostgreSQL
//! schema), the real router, called in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use fb_app::auth::{self, NewUser, SystemPrincipal};
use fb_core::identity::{Principal, Role};
use fb_core::ports::Storage;
use fb_server::settings::{Layers, Settings};
use fb_server::wire;

pub const JWT_SECRET: &str = "integration-test-signing-secret-0123456789";

pub struct TestApp {
    pub router: Router,
    pub settings: Settings,
    pub state: fb_http::AppState,
    pub auth: Arc<auth::Service>,
    pub storage: Storage,
    pub admin_password: String,
    pg_schema: Option<String>,
    _dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    /// The stable error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

pub fn pg_url() -> String {
    std::env::var("FB_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_env(Vec::new()).await
    }

    pub async fn postgres() -> Self {
        let schema = format!("fbtest_{}", uuid::Uuid::now_v7().simple());
        let mut app = Self::with_env(vec![
            ("FB__STORAGE__URL".into(), pg_url()),
            ("FB__STORAGE__SCHEMA".into(), schema.clone()),
        ])
        .await;
        app.pg_schema = Some(schema);
        app
    }

    pub async fn with_env(mut env: Vec<(String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        env.push((
            "FB__SERVER__DATA_DIR".into(),
            dir.path().display().to_string(),
        ));
        env.push(("FB__AUTH__JWT_SECRET".into(), JWT_SECRET.into()));
        let settings = Settings::load(&Layers {
            env,
            ..Layers::default()
        })
        .unwrap();
        let storage = wire::open_storage(&settings).await.unwrap();
        let auth = wire::auth_service(&settings, &storage).await.unwrap();
        let (_, admin_password) = auth.bootstrap_admin("admin").await.unwrap().unwrap();
        let state = wire::http_state(&settings, &storage, auth.clone())
            .await
            .unwrap();
        Self {
            router: fb_http::router(state.clone()),
            settings,
            state,
            auth,
            storage,
            admin_password,
            pg_schema: None,
            _dir: dir,
        }
    }

    /// The data directory (SQLite keeps `factorybrain.db` there).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The PostgreSQL schema of a [`postgres`](Self::postgres) app.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_deref()
    }

    /// Runs the real `factorybrain` binary on this app's store, with extra environment.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        // Owner-only, as the server makes a data directory it creates, so that the command's
        // output carries no warning about it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.data_dir(), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_factorybrain"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("FB__STORAGE__URL")
            .env_remove("FB__STORAGE__SCHEMA")
            .envs(env.iter().copied());
        if let Some(schema) = &self.pg_schema {
            command
                .env("FB__STORAGE__URL", pg_url())
                .env("FB__STORAGE__SCHEMA", schema);
        }
        command.output().unwrap()
    }

    pub async fn finish(self) {
        self.storage.health.close().await;
        if let Some(schema) = &self.pg_schema {
            fb_postgres::PgStore::drop_schema(&pg_url(), schema)
                .await
                .unwrap();
        }
    }

    pub async fn request(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        self.request(build_request(method, path, token, body)).await
    }

    /// A request from the client at `peer`, as the server sees a TCP connection's address.
    /// (Requests without one come from the client `unknown`.)
    pub async fn call_from(
        &self,
        peer: SocketAddr,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = build_request(method, path, token, body);
        request.extensions_mut().insert(ConnectInfo(peer));
        self.request(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Logs in over the API and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "login failed: {}",
            response.body
        );
        response.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", &self.admin_password.clone()).await
    }

    /// Creates a user with the given role directly through the service and logs it in.
    pub async fn token_for(&self, username: &str, role: Role) -> String {
        let password = format!("{username}-password-123");
        let new = NewUser {
            username: username.to_owned(),
            role,
            password: Some(password.clone()),
        };
        self.auth
            .create_user(&Principal::system(), new)
            .await
            .unwrap();
        self.login(username, &password).await
    }
}

fn build_request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}
