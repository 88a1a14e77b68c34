//! auth::Service over the in-memory store and a fake clock: expiry, throttling, multi-node keys.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use time::Duration;

use fb_app::auth::{
    self, AccessChange, Error, NewApiKey, NewUser, Rejection, SystemPrincipal, UserRef,
};
use fb_core::Coded;
use fb_core::identity::{Principal, Role, SiteScope, Subject};
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
        sites: None,
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
        sites: None,
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
        sites: None,
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
        sites: SiteScope::All,
        subject: Subject::User {
            id: fb_core::identity::UserId(uuid::Uuid::now_v7()),
            username: "sue".into(),
        },
    };
    let new = NewApiKey {
        name: "x".into(),
        role: Role::Viewer,
        sites: None,
        expires_at: None,
    };
    assert!(matches!(
        f.service.create_api_key(&supervisor, new).await,
        Err(Error::PermissionDenied(_))
    ));
    let new = NewUser {
        username: "eve".into(),
        role: Role::Admin,
        sites: None,
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

fn sites(names: &[&str]) -> SiteScope {
    SiteScope::named("sites", names).unwrap()
}

/// Creates a user with the given sites (as the system) and returns them as a caller.
async fn scoped_user(f: &Fixture, name: &str, role: Role, scope: SiteScope) -> Principal {
    let new = NewUser {
        username: name.into(),
        role,
        sites: Some(scope),
        password: Some(format!("{name}-password-123")),
    };
    let (user, _) = f
        .service
        .create_user(&Principal::system(), new)
        .await
        .unwrap();
    Principal {
        role: user.role,
        sites: user.sites,
        subject: Subject::User {
            id: user.id,
            username: user.username,
        },
    }
}

#[tokio::test]
async fn authentication_carries_the_stored_sites() {
    let f = fixture().await;
    let north = scoped_user(&f, "nora", Role::Operator, sites(&["north"])).await;
    let (_, token) = f.service.login("nora", "nora-password-123").await.unwrap();
    let principal = f.service.authenticate(&token.token).await.unwrap();
    assert_eq!(principal.sites, north.sites);
    let new = NewApiKey {
        name: "gateway".into(),
        role: Role::Operator,
        sites: Some(sites(&["north"])),
        expires_at: None,
    };
    let (_, key) = f
        .service
        .create_api_key(&Principal::system(), new)
        .await
        .unwrap();
    assert_eq!(
        f.service.authenticate(&key).await.unwrap().sites,
        sites(&["north"])
    );
}

#[tokio::test]
async fn a_scoped_admin_grants_only_within_its_sites_and_by_default_its_own() {
    let f = fixture().await;
    let admin = scoped_user(&f, "north-admin", Role::Admin, sites(&["north", "east"])).await;
    for requested in [
        sites(&["south"]),
        sites(&["north", "south"]),
        SiteScope::All,
    ] {
        let new = NewUser {
            username: "x-user".into(),
            role: Role::Viewer,
            sites: Some(requested.clone()),
            password: None,
        };
        let Err(e) = f.service.create_user(&admin, new).await else {
            panic!("{requested} was granted");
        };
        assert_eq!(e.code(), fb_core::Code::site_out_of_scope);
        assert_eq!(e.field_errors()[0].field, "sites");
        let key = NewApiKey {
            name: "k".into(),
            role: Role::Viewer,
            sites: Some(requested),
            expires_at: None,
        };
        let Err(e) = f.service.create_api_key(&admin, key).await else {
            panic!("key granted");
        };
        assert_eq!(e.code(), fb_core::Code::site_out_of_scope);
    }
    let new = NewUser {
        username: "inherits".into(),
        role: Role::Operator,
        sites: None,
        password: None,
    };
    let (user, _) = f.service.create_user(&admin, new).await.unwrap();
    assert_eq!(user.sites, sites(&["east", "north"]));
    let key = NewApiKey {
        name: "north gateway".into(),
        role: Role::Operator,
        sites: Some(sites(&["north"])),
        expires_at: None,
    };
    let (key, _) = f.service.create_api_key(&admin, key).await.unwrap();
    assert_eq!(key.sites, sites(&["north"]));
    // The system (CLI, bootstrap) grants anything; new users of an unscoped admin see all.
    let new = NewUser {
        username: "everywhere".into(),
        role: Role::Viewer,
        sites: None,
        password: None,
    };
    let (user, _) = f
        .service
        .create_user(&Principal::system(), new)
        .await
        .unwrap();
    assert_eq!(user.sites, SiteScope::All);
}

#[tokio::test]
async fn a_scoped_admin_neither_sees_nor_changes_users_and_keys_beyond_its_sites() {
    let f = fixture().await;
    let admin = scoped_user(&f, "north-admin", Role::Admin, sites(&["north"])).await;
    scoped_user(&f, "north-op", Role::Operator, sites(&["north"])).await;
    scoped_user(&f, "both-op", Role::Operator, sites(&["north", "south"])).await;
    scoped_user(&f, "all-op", Role::Operator, SiteScope::All).await;
    let listed: Vec<String> = f
        .service
        .list_users(&admin)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(listed, ["north-admin", "north-op"]);
    for name in ["both-op", "all-op"] {
        let target = UserRef::Username(name.into());
        assert!(matches!(
            f.service.set_user_disabled(&admin, &target, true).await,
            Err(Error::UserNotFound)
        ));
        let change = AccessChange {
            role: Some(Role::Viewer),
            sites: None,
        };
        assert!(matches!(
            f.service.update_user_access(&admin, &target, change).await,
            Err(Error::UserNotFound)
        ));
    }
    let wide = NewApiKey {
        name: "wide".into(),
        role: Role::Viewer,
        sites: Some(SiteScope::All),
        expires_at: None,
    };
    let (wide, _) = f
        .service
        .create_api_key(&Principal::system(), wide)
        .await
        .unwrap();
    assert!(f.service.list_api_keys(&admin).await.unwrap().is_empty());
    assert!(matches!(
        f.service
            .revoke_api_key(&admin, &auth::ApiKeyRef::Id(wide.id))
            .await,
        Err(Error::ApiKeyNotFound)
    ));
}

#[tokio::test]
async fn access_changes_follow_the_granting_rules() {
    let f = fixture().await;
    let root = scoped_user(&f, "root", Role::Admin, SiteScope::All).await;
    let north_admin = scoped_user(&f, "north-admin", Role::Admin, sites(&["north"])).await;
    scoped_user(&f, "operator", Role::Operator, sites(&["north"])).await;
    let op = UserRef::Username("operator".into());
    let change = |role: Option<Role>, scope: Option<SiteScope>| AccessChange { role, sites: scope };

    let changed = f
        .service
        .update_user_access(&north_admin, &op, change(Some(Role::Supervisor), None))
        .await
        .unwrap();
    assert_eq!(
        (changed.role, changed.sites.clone()),
        (Role::Supervisor, sites(&["north"]))
    );
    for scope in [sites(&["south"]), SiteScope::All] {
        let Err(e) = f
            .service
            .update_user_access(&north_admin, &op, change(None, Some(scope)))
            .await
        else {
            panic!("widened beyond the caller's sites");
        };
        assert_eq!(e.code(), fb_core::Code::site_out_of_scope);
    }
    // Nobody changes their own access, not even to narrow it.
    let me = UserRef::Username("north-admin".into());
    assert!(matches!(
        f.service
            .update_user_access(&north_admin, &me, change(Some(Role::Viewer), None))
            .await,
        Err(Error::OwnAccessChange)
    ));
    // A supervisor cannot change access at all.
    let sup = scoped_user(&f, "sup", Role::Supervisor, SiteScope::All).await;
    assert!(matches!(
        f.service
            .update_user_access(&sup, &op, change(Some(Role::Viewer), None))
            .await,
        Err(Error::PermissionDenied(_))
    ));
    // The last admin of all sites can be neither demoted nor limited to some sites.
    let root_ref = UserRef::Username("root".into());
    for (role, scope) in [
        (Role::Supervisor, SiteScope::All),
        (Role::Admin, sites(&["north"])),
    ] {
        assert!(matches!(
            f.service
                .update_user_access(
                    &Principal::system(),
                    &root_ref,
                    change(Some(role), Some(scope))
                )
                .await,
            Err(Error::LastAdmin)
        ));
    }
    // An unscoped admin may widen the site admin to all sites.
    let widened = f
        .service
        .update_user_access(&root, &me, change(None, Some(SiteScope::All)))
        .await
        .unwrap();
    assert_eq!(widened.sites, SiteScope::All);
}
