use std::sync::Arc;

use fb_core::identity::Role;
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use sha2::{Digest, Sha256};

use super::*;

struct Fixture {
    service: Service,
    store: Arc<MemoryStore>,
    clock: Arc<FakeClock>,
}

fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FakeClock::new());
    Fixture {
        service: Service::new(store.clone(), clock.clone()),
        store,
        clock,
    }
}

fn caller(role: Role) -> Principal {
    fb_testkit::fixtures::principal(role)
}

fn new_device(name: &str) -> NewDevice {
    NewDevice {
        name: name.to_owned(),
        machine: Some("press-01".to_owned()),
        site: Some("plant-a".to_owned()),
    }
}

#[tokio::test]
async fn a_created_device_connects_with_its_password_which_is_stored_only_as_a_hash() {
    let f = fixture();
    let admin = caller(Role::Admin);
    let (device, password) = f
        .service
        .create(&admin, new_device("press-01"))
        .await
        .unwrap();
    assert!(password.starts_with(PASSWORD_SCHEME), "{password}");
    // 256 bits of base64url after the scheme.
    assert_eq!(password.len(), PASSWORD_SCHEME.len() + 43);
    assert_eq!(device.created_by, admin.user_id());
    let stored = f.store.device_by_name("press-01").await.unwrap().unwrap();
    assert_eq!(
        stored.secret_hash,
        Sha256::digest(password.as_bytes()).to_vec()
    );
    assert!(!format!("{stored:?}").contains(&password[4..]));

    let connected = f
        .service
        .authenticate("press-01", "press-01", &password)
        .await
        .unwrap();
    assert_eq!(connected.id, device.id);
    let (_, other) = f
        .service
        .create(&admin, new_device("press-02"))
        .await
        .unwrap();
    assert_ne!(password, other, "every device gets its own secret");
}

#[tokio::test]
async fn wrong_passwords_unknown_and_revoked_devices_are_refused_alike() {
    let f = fixture();
    let admin = caller(Role::Admin);
    let (_, password) = f
        .service
        .create(&admin, new_device("pump-3"))
        .await
        .unwrap();
    for (name, presented) in [
        ("pump-3", "fbd_guess"),
        ("pump-3", ""),
        ("pump-4", password.as_str()),
        ("PUMP-3", password.as_str()),
    ] {
        let refused = f
            .service
            .authenticate(name, name, presented)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::InvalidCredentials),
            "{name}: {refused:?}"
        );
    }
    // Its own client ids only: another id could take over a connection that is not its own.
    for client_id in ["factorybrain", "pump-4", "pump-3x", "pump"] {
        assert!(
            matches!(
                f.service.authenticate(client_id, "pump-3", &password).await,
                Err(Error::InvalidCredentials)
            ),
            "{client_id}"
        );
    }
    for client_id in ["pump-3", "pump-3:line-2"] {
        assert!(
            f.service
                .authenticate(client_id, "pump-3", &password)
                .await
                .is_ok(),
            "{client_id}"
        );
    }
    let long = "x".repeat(PASSWORD_MAX + 1);
    assert!(matches!(
        f.service.authenticate("pump-3", "pump-3", &long).await,
        Err(Error::InvalidCredentials)
    ));

    let mut revocations = f.service.subscribe_revocations();
    let revoked = f
        .service
        .revoke(&admin, &DeviceRef::parse("pump-3"))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(f.clock.now()));
    assert_eq!(revocations.try_recv().unwrap(), "pump-3");
    assert!(matches!(
        f.service.authenticate("pump-3", "pump-3", &password).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        f.service.revoke(&admin, &DeviceRef::Id(revoked.id)).await,
        Err(Error::Revoked)
    ));
    assert!(matches!(
        f.service.revoke(&admin, &DeviceRef::parse("nobody")).await,
        Err(Error::NotFound)
    ));
    // A revoked device's name stays taken: its old secret can never match a new device.
    assert!(matches!(
        f.service.create(&admin, new_device("pump-3")).await,
        Err(Error::Exists)
    ));
}

#[tokio::test]
async fn only_plant_managers_handle_device_credentials() {
    let f = fixture();
    for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
        let who = caller(role);
        let denied = [
            f.service.create(&who, new_device("x1")).await.err(),
            f.service.list(&who).await.err(),
            f.service.revoke(&who, &DeviceRef::parse("x1")).await.err(),
        ];
        for error in denied {
            assert!(
                matches!(
                    error,
                    Some(Error::PermissionDenied(Permission::PlantManage))
                ),
                "{role}: {error:?}"
            );
        }
    }
    assert!(
        f.service
            .list(&caller(Role::Admin))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn every_invalid_field_is_named() {
    let f = fixture();
    let bad = NewDevice {
        name: "factorybrain-ingest".to_owned(),
        machine: Some("press/01".to_owned()),
        site: Some("plant+a".to_owned()),
    };
    let Err(Error::Validation(fields)) = f.service.create(&caller(Role::Admin), bad).await else {
        panic!("expected a validation error");
    };
    let named: Vec<&str> = fields.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(named, ["name", "machine", "site"]);
    assert_eq!(
        Error::Validation(fields).code(),
        Code::invalid_field,
        "bad input is a 4xx"
    );
}

#[tokio::test]
async fn a_device_reconnecting_in_a_loop_is_recorded_once_a_minute() {
    let f = fixture();
    let (_, password) = f
        .service
        .create(&caller(Role::Admin), new_device("cnc-9"))
        .await
        .unwrap();
    for _ in 0..5 {
        f.service
            .authenticate("cnc-9", "cnc-9", &password)
            .await
            .unwrap();
    }
    assert_eq!(f.store.device_touch_count(), 1);
    f.clock.advance(time::Duration::seconds(61));
    let device = f
        .service
        .authenticate("cnc-9", "cnc-9", &password)
        .await
        .unwrap();
    assert_eq!(f.store.device_touch_count(), 2);
    assert!(device.last_connected_at.is_some());
    let stored = f.store.device_by_name("cnc-9").await.unwrap().unwrap();
    assert_eq!(stored.last_connected_at, Some(f.clock.now()));
}

#[tokio::test]
async fn only_a_caller_of_all_sites_manages_device_credentials() {
    let f = fixture();
    let mut site_admin = caller(Role::Admin);
    site_admin.sites = fb_core::identity::SiteScope::named("sites", &["plant-a"]).unwrap();
    let refused = f.service.create(&site_admin, new_device("gw-1")).await;
    assert!(
        matches!(&refused, Err(Error::OutOfScope(_))),
        "a device may publish for any site: {refused:?}"
    );
    assert!(matches!(
        f.service.list(&site_admin).await,
        Err(Error::OutOfScope(_))
    ));
    assert!(
        f.service
            .create(&caller(Role::Admin), new_device("gw-1"))
            .await
            .is_ok()
    );
}
