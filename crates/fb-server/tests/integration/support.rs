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
use fb_core::identity::{Principal, Role, SiteScope};
use fb_core::ports::Storage;
use fb_server::settings::{Layers, Settings};
use fb_server::wire;

pub const JWT_SECRET: &str = "integration-test-signing-secret-0123456789";

pub struct TestApp {
    /// The first admin's session, enrolled with a second factor on first use.
    admin: tokio::sync::OnceCell<String>,
    /// Second factors enrolled through `enrolled_login`: username → (secret, last step used).
    authenticators: std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
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
        // A known key, so that tests can forge tokens; a test of key generation sets it empty.
        if !env.iter().any(|(key, _)| key == "FB__AUTH__JWT_SECRET") {
            env.push(("FB__AUTH__JWT_SECRET".into(), JWT_SECRET.into()));
        }
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
            admin: tokio::sync::OnceCell::new(),
            authenticators: Default::default(),
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

    /// Marks the app's PostgreSQL schema as its own, dropped by `finish` (for apps built with
    /// `with_env` on PostgreSQL).
    pub fn with_pg_schema(mut self, schema: String) -> Self {
        self.pg_schema = Some(schema);
        self
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

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::PATCH, path, token, Some(body)).await
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

    /// A session of the first admin, with a second factor enrolled (admins need one before
    /// they may act). The same session for every call: a TOTP code works once, so a fresh
    /// login per call would run out of codes.
    pub async fn admin_token(&self) -> String {
        self.admin
            .get_or_init(|| self.enrolled_login("admin", &self.admin_password))
            .await
            .clone()
    }

    /// Logs in; when the role needs a second factor that is not enrolled yet, enrols one (as a
    /// user would with an authenticator app), which opens the session's other permissions. A
    /// user enrolled this way before completes later logins with the next unused code.
    pub async fn enrolled_login(&self, username: &str, password: &str) -> String {
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
        if let Some(challenge) = response.body["mfa_token"].as_str() {
            let code = self.next_code(username).await;
            let verified = self
                .post(
                    "/api/v1/auth/mfa/verify",
                    None,
                    json!({"mfa_token": challenge, "code": code}),
                )
                .await;
            assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
            return verified.body["access_token"].as_str().unwrap().to_owned();
        }
        let token = response.body["access_token"].as_str().unwrap().to_owned();
        if response.body["mfa_enrolment_required"] == true {
            let enrolment = self
                .post("/api/v1/auth/mfa/totp", Some(&token), json!({}))
                .await;
            assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.body);
            let secret = enrolment.body["secret"].as_str().unwrap().to_owned();
            self.authenticators
                .lock()
                .unwrap()
                .insert(username.to_owned(), (secret, 0));
            let code = self.next_code(username).await;
            let confirmed = self
                .post(
                    "/api/v1/auth/mfa/totp/confirm",
                    Some(&token),
                    json!({"code": code}),
                )
                .await;
            assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
        }
        token
    }

    /// The next code of a user's authenticator that the server has not accepted yet (a code
    /// works once; the server also takes the next step's code, else this waits for it).
    async fn next_code(&self, username: &str) -> String {
        use fb_app::auth::totp;
        loop {
            let now = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
            {
                let mut known = self.authenticators.lock().unwrap();
                let (secret, last) = known
                    .get_mut(username)
                    .unwrap_or_else(|| panic!("{username} has no authenticator here"));
                let step = now.max(*last + 1);
                if step <= now + 1 {
                    *last = step;
                    let secret = data_encoding::BASE32_NOPAD
                        .decode(secret.as_bytes())
                        .unwrap();
                    return format!("{:06}", totp::code_at(&secret, step));
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// A six-digit code that the authenticator enrolled for `username` shows in none of the
    /// time steps the server accepts now: a wrong guess for certain.
    pub fn wrong_code(&self, username: &str) -> String {
        use fb_app::auth::totp;
        let known = self.authenticators.lock().unwrap();
        let (secret, _) = known
            .get(username)
            .unwrap_or_else(|| panic!("{username} has no authenticator here"));
        let secret = data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .unwrap();
        let now = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
        let valid: Vec<u32> = (now - 2..=now + 2)
            .map(|step| totp::code_at(&secret, step))
            .collect();
        let wrong = (0..).find(|code| !valid.contains(code)).unwrap();
        format!("{wrong:06}")
    }

    /// Creates a user with the given role directly through the service and logs it in.
    pub async fn token_for(&self, username: &str, role: Role) -> String {
        self.token_for_sites(username, role, SiteScope::All).await
    }

    /// Creates a user with the given role and sites directly through the service and logs it
    /// in.
    pub async fn token_for_sites(&self, username: &str, role: Role, sites: SiteScope) -> String {
        let password = format!("{username}-password-123");
        let new = NewUser {
            username: username.to_owned(),
            role,
            sites: Some(sites),
            password: Some(password.clone()),
        };
        self.auth
            .create_user(&Principal::system(), new)
            .await
            .unwrap();
        self.enrolled_login(username, &password).await
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

/// The code an authenticator app shows now for an enrolment secret (base32), `steps_ahead`
/// time steps later (a code works once: a second login in the same 30 s needs the next one).
pub fn totp_code(secret_base32: &str, steps_ahead: i64) -> String {
    use fb_app::auth::totp;
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let step = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp()) + steps_ahead;
    format!("{:06}", totp::code_at(&secret, step))
}

/// Logs a user in over real HTTP (the running binary) and, when their role needs a second
/// factor not enrolled yet, enrols one so that the session may act; returns the access token.
pub fn http_login(agent: &ureq::Agent, base: &str, username: &str, password: &str) -> String {
    let mut login = agent
        .post(&format!("{base}/api/v1/auth/login"))
        .send_json(json!({"username": username, "password": password}))
        .unwrap();
    assert_eq!(login.status().as_u16(), 200, "login of {username} refused");
    let body = login.body_mut().read_json::<Value>().unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    if body["mfa_enrolment_required"] == true {
        let mut enrolment = agent
            .post(&format!("{base}/api/v1/auth/mfa/totp"))
            .header("authorization", &format!("Bearer {token}"))
            .send_empty()
            .unwrap();
        let secret = enrolment.body_mut().read_json::<Value>().unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let confirmed = agent
            .post(&format!("{base}/api/v1/auth/mfa/totp/confirm"))
            .header("authorization", &format!("Bearer {token}"))
            .send_json(json!({"code": totp_code(&secret, 0)}))
            .unwrap();
        assert_eq!(confirmed.status().as_u16(), 200, "enrolment refused");
    }
    token
}

/// Builds a token from raw parts, signed with HMAC `alg` over the test key (or unsigned).
pub fn forge(
    header: serde_json::Value,
    claims: serde_json::Value,
    alg: Option<jsonwebtoken::Algorithm>,
) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match alg {
        Some(alg) => {
            let mut h = jsonwebtoken::Header::new(alg);
            h.typ = header["typ"].as_str().map(str::to_owned);
            jsonwebtoken::encode(
                &h,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
            )
            .unwrap()
        }
        None => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
    }
}
