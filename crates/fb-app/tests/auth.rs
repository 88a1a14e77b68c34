//! auth::Service over the in-memory store and a fake clock: expiry, throttling, multi-node keys.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use time::Duration;

use fb_app::auth::{
    self, AccessChange, ClientInfo, Error, LoginOutcome, MfaProof, NewApiKey, NewUser, Rejection,
    SessionTokens, SystemPrincipal, UserRef, totp,
};
use fb_core::Coded;
use fb_core::identity::{Principal, Role, SiteScope, Subject};
use fb_core::ports::Storage;
use fb_core::session::EndReason;
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;

fn options() -> auth::Options {
    auth::Options::with_defaults()
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

/// Logs in a user without a second factor; returns the session's tokens.
async fn login(f: &Fixture, name: &str, password: &str) -> SessionTokens {
    match f
        .service
        .login(name, password, &ClientInfo::default())
        .await
        .unwrap()
    {
        LoginOutcome::Session(_, tokens) => tokens,
        LoginOutcome::MfaRequired(..) => panic!("{name} has a second factor"),
    }
}

/// The current code of a TOTP secret shown at enrolment (base32), as an authenticator computes it.
fn code_now(f: &Fixture, secret_base32: &str) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let step = totp::step_at(f.clock.now_for_tests().unix_timestamp());
    format!("{:06}", totp::code_at(&secret, step))
}

async fn user(f: &Fixture, name: &str, role: Role) -> String {
    let password = format!("{name}-password-123");
    let new = NewUser {
        username: name.into(),
        role,
        password: Some(password.clone()),
        sites: None,
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
    let token = login(&f, "anna", &password).await.access;
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
    let old = login(&f, "bert", &password).await;
    f.clock.advance(Duration::seconds(5));
    let caller = f.service.authenticate(&old.access.token).await.unwrap();
    f.service
        .change_password(&caller, &password, "a brand new password")
        .await
        .unwrap();
    assert!(matches!(
        f.service.authenticate(&old.access.token).await,
        Err(Error::InvalidToken(Rejection::SessionEnded))
    ));
    assert!(matches!(
        f.service.refresh(&old.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
    let fresh = login(&f, "bert", "a brand new password").await;
    assert!(f.service.authenticate(&fresh.access.token).await.is_ok());
}

#[tokio::test]
async fn api_keys_expire_and_record_use_at_most_once_a_minute() {
    let f = fixture().await;
    let expires_at = Some(f.clock.now_for_tests() + Duration::days(1));
    let new = NewApiKey {
        name: "bridge".into(),
        role: Role::Operator,
        expires_at,
        sites: None,
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
        sites: None,
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
            session: None,
        },
        mfa_enrolment_pending: false,
    };
    let new = NewApiKey {
        name: "x".into(),
        role: Role::Viewer,
        expires_at: None,
        sites: None,
    };
    assert!(matches!(
        f.service.create_api_key(&supervisor, new).await,
        Err(Error::PermissionDenied(_))
    ));
    let new = NewUser {
        username: "eve".into(),
        role: Role::Admin,
        password: None,
        sites: None,
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
    let token = login(&f, "carl", &password).await.access;
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

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let f = fixture().await;
    let password = user(&f, "dora", Role::Operator).await;
    let first = login(&f, "dora", &password).await;
    f.clock.advance(Duration::minutes(10));
    let (_, second) = f.service.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(second.session, first.session);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(f.service.authenticate(&second.access.token).await.is_ok());
    assert!(
        f.service.authenticate(&first.access.token).await.is_ok(),
        "earlier access tokens of a live session stay valid until they expire"
    );

    // An attacker replays the first refresh token: the whole family ends.
    assert!(matches!(
        f.service.refresh(&first.refresh_token).await,
        Err(Error::RefreshTokenReused)
    ));
    for token in [&first.access.token, &second.access.token] {
        assert!(matches!(
            f.service.authenticate(token).await,
            Err(Error::InvalidToken(Rejection::SessionEnded))
        ));
    }
    assert!(matches!(
        f.service.refresh(&second.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
    assert!(matches!(
        f.service.refresh("fbr_not-a-token").await,
        Err(Error::RefreshTokenInvalid)
    ));
}

#[tokio::test]
async fn sessions_end_at_their_maximum_age_however_often_refreshed() {
    let f = fixture().await;
    let password = user(&f, "emil", Role::Viewer).await;
    let mut tokens = login(&f, "emil", &password).await;
    for _ in 0..29 {
        f.clock.advance(Duration::days(1));
        tokens = f.service.refresh(&tokens.refresh_token).await.unwrap().1;
    }
    assert!(tokens.access.expires_at <= f.clock.now_for_tests() + Duration::days(1));
    f.clock.advance(Duration::days(1));
    assert!(matches!(
        f.service.refresh(&tokens.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
    // Unused refresh tokens run out too.
    let idle = login(&f, "emil", &password).await;
    f.clock.advance(Duration::days(15));
    assert!(matches!(
        f.service.refresh(&idle.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
}

#[tokio::test]
async fn logout_and_admin_revocation_end_sessions_at_once() {
    let f = fixture().await;
    let password = user(&f, "finn", Role::Operator).await;
    let phone = login(&f, "finn", &password).await;
    let laptop = login(&f, "finn", &password).await;
    let caller = f.service.authenticate(&phone.access.token).await.unwrap();
    assert_eq!(f.service.my_sessions(&caller).await.unwrap().len(), 2);
    let ended = f.service.logout(&caller).await.unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::Logout));
    assert!(f.service.authenticate(&phone.access.token).await.is_err());
    assert!(f.service.authenticate(&laptop.access.token).await.is_ok());

    let (_, count) = f
        .service
        .end_user_sessions(&Principal::system(), &UserRef::Username("finn".into()))
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert!(f.service.authenticate(&laptop.access.token).await.is_err());
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_revokes_their_keys() {
    let f = fixture().await;
    let password = user(&f, "gina", Role::Admin).await;
    let gina = f
        .service
        .list_users(&Principal::system())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "gina")
        .unwrap();
    // Admins must enrol a second factor before acting; act as the owner of the key directly.
    let as_gina = Principal {
        role: Role::Admin,
        sites: SiteScope::All,
        subject: Subject::User {
            id: gina.id,
            username: "gina".into(),
            session: None,
        },
        mfa_enrolment_pending: false,
    };
    let new = NewApiKey {
        name: "gina's gateway".into(),
        role: Role::Operator,
        expires_at: None,
        sites: None,
    };
    let (_, key) = f.service.create_api_key(&as_gina, new).await.unwrap();
    let tokens = login(&f, "gina", &password).await;
    user(&f, "second-admin", Role::Admin).await;
    f.service
        .set_user_disabled(
            &Principal::system(),
            &UserRef::Username("gina".into()),
            true,
        )
        .await
        .unwrap();
    assert!(f.service.authenticate(&tokens.access.token).await.is_err());
    assert!(matches!(
        f.service.refresh(&tokens.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
    assert!(matches!(
        f.service.authenticate(&key).await,
        Err(Error::InvalidApiKey)
    ));
}

#[tokio::test]
async fn admins_must_enrol_a_second_factor_and_then_use_it() {
    let f = fixture().await;
    let password = user(&f, "hana", Role::Admin).await;
    let tokens = login(&f, "hana", &password).await;
    let pending = f.service.authenticate(&tokens.access.token).await.unwrap();
    assert!(pending.mfa_enrolment_pending);
    assert!(matches!(
        f.service.list_users(&pending).await,
        Err(Error::MfaEnrolmentRequired)
    ));

    let enrolment = f.service.start_totp_enrolment(&pending).await.unwrap();
    assert!(
        enrolment
            .uri
            .starts_with("otpauth://totp/factorybrain:hana?secret=")
    );
    assert!(matches!(
        f.service.confirm_totp(&pending, "000000").await,
        Err(Error::MfaCodeInvalid)
    ));
    let codes = f
        .service
        .confirm_totp(&pending, &code_now(&f, &enrolment.secret))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    // The same session is verified now.
    let verified = f.service.authenticate(&tokens.access.token).await.unwrap();
    assert!(!verified.mfa_enrolment_pending);
    assert!(f.service.list_users(&verified).await.is_ok());

    // The next login asks for the second factor.
    f.clock.advance(Duration::seconds(31));
    let LoginOutcome::MfaRequired(_, challenge) = f
        .service
        .login("hana", &password, &ClientInfo::default())
        .await
        .unwrap()
    else {
        panic!("the second factor must be asked for");
    };
    let code = code_now(&f, &enrolment.secret);
    let (_, session) = f
        .service
        .verify_mfa(
            &challenge.token,
            &MfaProof::Code(code.clone()),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let caller = f.service.authenticate(&session.access.token).await.unwrap();
    assert!(!caller.mfa_enrolment_pending);
    // The same code never works twice.
    assert!(matches!(
        f.service
            .verify_mfa(
                &challenge.token,
                &MfaProof::Code(code),
                &ClientInfo::default()
            )
            .await,
        Err(Error::MfaCodeInvalid)
    ));
    // A recovery code works once.
    let recovery = MfaProof::RecoveryCode(codes[3].to_lowercase());
    assert!(
        f.service
            .verify_mfa(&challenge.token, &recovery, &ClientInfo::default())
            .await
            .is_ok()
    );
    assert!(matches!(
        f.service
            .verify_mfa(&challenge.token, &recovery, &ClientInfo::default())
            .await,
        Err(Error::MfaCodeInvalid)
    ));
    // The challenge runs out.
    f.clock.advance(Duration::minutes(6));
    let late = code_now(&f, &enrolment.secret);
    assert!(matches!(
        f.service
            .verify_mfa(
                &challenge.token,
                &MfaProof::Code(late),
                &ClientInfo::default()
            )
            .await,
        Err(Error::MfaCodeInvalid)
    ));
    // Admins cannot turn it off; an access token is never a challenge.
    assert!(matches!(
        f.service.disable_totp(&caller, &password, "123456").await,
        Err(Error::MfaRequiredForRole)
    ));
    assert!(matches!(
        f.service
            .verify_mfa(
                &session.access.token,
                &MfaProof::Code("123456".into()),
                &ClientInfo::default()
            )
            .await,
        Err(Error::MfaCodeInvalid)
    ));

    // A lost phone: another admin resets it, which ends hana's sessions.
    f.service
        .reset_mfa(&Principal::system(), &UserRef::Username("hana".into()))
        .await
        .unwrap();
    assert!(f.service.authenticate(&session.access.token).await.is_err());
    let again = login(&f, "hana", &password).await;
    assert!(
        f.service
            .authenticate(&again.access.token)
            .await
            .unwrap()
            .mfa_enrolment_pending
    );
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_sessions_and_other_nodes_follow() {
    let f = fixture().await;
    let password = user(&f, "ivan", Role::Viewer).await;
    let before = login(&f, "ivan", &password).await;
    let other_node = auth::Service::start(&f.storage, f.clock.clone(), options())
        .await
        .unwrap();
    let old_kid = f.service.signing_key_id();
    let new_kid = f.service.rotate_signing_key().await.unwrap();
    assert_ne!(old_kid, new_kid);
    // Signed with the previous key: still accepted until it expires.
    assert!(f.service.authenticate(&before.access.token).await.is_ok());
    // The session goes on with a token signed by the new key, which the other node has never
    // seen: it re-reads the keys and accepts it.
    let (_, after) = f.service.refresh(&before.refresh_token).await.unwrap();
    assert!(other_node.authenticate(&after.access.token).await.is_ok());
    assert_eq!(other_node.signing_key_id(), new_kid);
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
            session: None,
        },
        mfa_enrolment_pending: false,
    }
}

#[tokio::test]
async fn authentication_carries_the_stored_sites() {
    let f = fixture().await;
    let north = scoped_user(&f, "nora", Role::Operator, sites(&["north"])).await;
    let token = login(&f, "nora", "nora-password-123").await.access;
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

#[tokio::test]
async fn keys_made_by_keys_belong_to_the_person_and_go_with_their_access() {
    let f = fixture().await;
    user(&f, "kim", Role::Admin).await;
    user(&f, "other-admin", Role::Admin).await;
    let kim = f
        .service
        .list_users(&Principal::system())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "kim")
        .unwrap();
    let as_kim = Principal {
        role: Role::Admin,
        sites: SiteScope::All,
        subject: Subject::User {
            id: kim.id,
            username: "kim".into(),
            session: None,
        },
        mfa_enrolment_pending: false,
    };
    let key = |name: &str, role: Role| NewApiKey {
        name: name.into(),
        role,
        sites: None,
        expires_at: None,
    };
    let (first, first_secret) = f
        .service
        .create_api_key(&as_kim, key("provisioner", Role::Admin))
        .await
        .unwrap();
    let as_first = f.service.authenticate(&first_secret).await.unwrap();
    let (second, second_secret) = f
        .service
        .create_api_key(&as_first, key("made-by-a-key", Role::Operator))
        .await
        .unwrap();
    assert_eq!(
        second.created_by,
        Some(kim.id),
        "a key made by a key is the person's"
    );
    assert_eq!(first.created_by, Some(kim.id));

    // Demoted to operator: the admin key goes, the operator key stays.
    f.service
        .update_user_access(
            &Principal::system(),
            &UserRef::Username("kim".into()),
            AccessChange {
                role: Some(Role::Operator),
                ..AccessChange::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        f.service.authenticate(&first_secret).await,
        Err(Error::InvalidApiKey)
    ));
    assert!(f.service.authenticate(&second_secret).await.is_ok());

    // Disabled: every key of the person goes, including the one a key made.
    f.service
        .set_user_disabled(&Principal::system(), &UserRef::Username("kim".into()), true)
        .await
        .unwrap();
    assert!(matches!(
        f.service.authenticate(&second_secret).await,
        Err(Error::InvalidApiKey)
    ));
}
