//! auth::Service over the in-memory store and a fake clock: expiry, throttling, multi-node keys.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use time::Duration;

use fb_app::auth::{self, Error, NewApiKey, NewUser, Rejection, SystemPrincipal, UserRef};
use fb_core::identity::{Principal, Role, Subject};
use fb_core::ports::Storage;
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;

fn options() -> auth::Options {
    auth::Options {
        access_token_ttl: Duration::hours(1),
        issuer: "factorybrain".into(),
        audience: "factorybrain-api".into(),
        signing_secret: None,
    }
}

struct Fixture {
    service: auth::Service,
    clock: Arc<FakeClock>,
    store: Arc<MemoryStore>,
    storage: Storage,
}

async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let storage = Storage::from_backend(store.clone());
    let clock = Arc::new(FakeClock::new());
    let service = auth::Service::start(&storage, clock.clone(), options())
        .await
        .unwrap();
    Fixture {
        service,
        clock,
        store,
        storage,
    }
}

async fn user(f: &Fixture, name: &str, role: Role) -> String {
    let password = format!("{name}-password-123");
    let new = NewUser {
        username: name.into(),
        role,
        password: Some(password.clone()),
    };
    f.service
        .create_user(&Principal::system(), new)
        .await
        .unwrap();
    password
}

#[tokio::test]
async fn access_tokens_expire_by_the_clock() {
    let f = fixture().await;
    let password = user(&f, "anna", Role::Operator).await;
    let (_, token) = f.service.login("anna", &password).await.unwrap();
    assert_eq!(token.expires_in_secs, 3600);
    f.clock.advance(Duration::minutes(59));
    assert!(f.service.authenticate(&token.token).await.is_ok());
    f.clock.advance(Duration::minutes(2));
    assert!(matches!(
        f.service.authenticate(&token.token).await,
        Err(Error::InvalidToken(Rejection::Expired))
    ));
}

#[tokio::test]
async fn a_password_change_supersedes_earlier_tokens() {
    let f = fixture().await;
    let password = user(&f, "bert", Role::Viewer).await;
    let (_, old) = f.service.login("bert", &password).await.unwrap();
    f.clock.advance(Duration::seconds(5));
    let caller = f.service.authenticate(&old.token).await.unwrap();
    f.service
        .change_password(&caller, &password, "a brand new password")
        .await
        .unwrap();
    assert!(matches!(
        f.service.authenticate(&old.token).await,
        Err(Error::InvalidToken(Rejection::Superseded))
    ));
    let (_, fresh) = f
        .service
        .login("bert", "a brand new password")
        .await
        .unwrap();
    assert!(f.service.authenticate(&fresh.token).await.is_ok());
}

#[tokio::test]
async fn api_keys_expire_and_record_use_at_most_once_a_minute() {
    let f = fixture().await;
    let expires_at = Some(f.clock.now_for_tests() + Duration::days(1));
    let new = NewApiKey {
        name: "bridge".into(),
        role: Role::Operator,
        expires_at,
    };
    let (_, key) = f
        .service
        .create_api_key(&Principal::system(), new)
        .await
        .unwrap();

    let principal = f.service.authenticate(&key).await.unwrap();
    assert_eq!(principal.role, Role::Operator);
    assert!(matches!(principal.subject, Subject::ApiKey { .. }));
    f.service.authenticate(&key).await.unwrap();
    assert_eq!(
        f.store.touch_count(),
        1,
        "a second use within a minute is not written"
    );
    f.clock.advance(Duration::seconds(61));
    f.service.authenticate(&key).await.unwrap();
    assert_eq!(f.store.touch_count(), 2);

    f.clock.advance(Duration::days(1));
    assert!(matches!(
        f.service.authenticate(&key).await,
        Err(Error::InvalidApiKey)
    ));
}

#[tokio::test]
async fn expiry_in_the_past_and_blank_names_are_refused() {
    let f = fixture().await;
    let past = Some(f.clock.now_for_tests() - Duration::seconds(1));
    let new = NewApiKey {
        name: "  ".into(),
        role: Role::Viewer,
        expires_at: past,
    };
    let Err(Error::Validation(fields)) = f.service.create_api_key(&Principal::system(), new).await
    else {
        panic!("expected a validation error");
    };
    let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["name", "expires_at"]);
}

#[tokio::test]
async fn only_holders_of_the_permission_manage_keys_and_users() {
    let f = fixture().await;
    let supervisor = Principal {
        role: Role::Supervisor,
        subject: Subject::User {
            id: fb_core::identity::UserId(uuid::Uuid::now_v7()),
            username: "sue".into(),
        },
    };
    let new = NewApiKey {
        name: "x".into(),
        role: Role::Viewer,
        expires_at: None,
    };
    assert!(matches!(
        f.service.create_api_key(&supervisor, new).await,
        Err(Error::PermissionDenied(_))
    ));
    let new = NewUser {
        username: "eve".into(),
        role: Role::Admin,
        password: None,
    };
    assert!(matches!(
        f.service.create_user(&supervisor, new).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(
        f.service.list_users(&supervisor).await.is_ok(),
        "supervisors may list users"
    );
}

#[tokio::test]
async fn bootstrap_happens_once_and_the_last_admin_stays() {
    let f = fixture().await;
    let (admin, password) = f.service.bootstrap_admin("admin").await.unwrap().unwrap();
    assert!(admin.must_change_password);
    assert_eq!(password.len(), 20);
    assert!(f.service.bootstrap_admin("admin").await.unwrap().is_none());
    let system = Principal::system();
    let last = f
        .service
        .set_user_disabled(&system, &UserRef::Username("admin".into()), true)
        .await;
    assert!(matches!(last, Err(Error::LastAdmin)));
    let missing = f
        .service
        .set_user_disabled(&system, &UserRef::Username("nobody".into()), true)
        .await;
    assert!(matches!(missing, Err(Error::UserNotFound)));
}

#[tokio::test]
async fn nodes_sharing_a_store_share_the_generated_signing_key() {
    let f = fixture().await;
    let password = user(&f, "carl", Role::Viewer).await;
    let (_, token) = f.service.login("carl", &password).await.unwrap();
    let other_node = auth::Service::start(&f.storage, f.clock.clone(), options())
        .await
        .unwrap();
    assert!(other_node.authenticate(&token.token).await.is_ok());
}

#[tokio::test]
async fn a_configured_secret_must_be_long_enough() {
    let f = fixture().await;
    let short = auth::Options {
        signing_secret: Some(b"too short".to_vec()),
        ..options()
    };
    let Err(Error::Validation(fields)) =
        auth::Service::start(&f.storage, f.clock.clone(), short).await
    else {
        panic!("a short secret must be refused");
    };
    assert_eq!(fields[0].field, "auth.jwt_secret");
}
