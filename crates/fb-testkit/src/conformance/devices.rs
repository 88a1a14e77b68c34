use time::Duration;

use fb_core::device::DeviceId;
use fb_core::identity::Role;
use fb_core::ports::{Storage, StoreError};

use crate::fixtures::{device, instant, user};

pub async fn devices_round_trip(storage: &Storage) {
    let owner = user("device-owner", Role::Admin);
    storage.identities.insert_user(&owner).await.unwrap();
    let gateway = device("press-01", Some("press-01"), Some(owner.id));
    storage.devices.insert_device(&gateway).await.unwrap();
    // Neither a machine nor a site, and created from the command line.
    let mut roaming = device("handheld.7", None, None);
    roaming.site = None;
    storage.devices.insert_device(&roaming).await.unwrap();

    let d = &storage.devices;
    assert_eq!(
        d.device_by_name("press-01").await.unwrap(),
        Some(gateway.clone())
    );
    assert_eq!(d.device_by_id(gateway.id).await.unwrap(), Some(gateway));
    assert_eq!(
        d.device_by_id(roaming.id).await.unwrap(),
        Some(roaming.clone())
    );
    assert_eq!(d.device_by_name("nobody").await.unwrap(), None);
    assert_eq!(
        d.device_by_id(DeviceId(uuid::Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );
}

pub async fn device_names_are_unique_even_after_revocation(storage: &Storage) {
    let d = &storage.devices;
    let first = device("pump-3", Some("pump-3"), None);
    d.insert_device(&first).await.unwrap();
    d.revoke_device(first.id, instant()).await.unwrap();
    let err = d
        .insert_device(&device("pump-3", None, None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: "device_name"
            }
        ),
        "expected a device name conflict, got {err:?}"
    );
    assert_eq!(d.list_devices().await.unwrap().len(), 1);
}

pub async fn devices_are_listed_by_name(storage: &Storage) {
    let d = &storage.devices;
    for name in ["conveyor-2", "cnc-9", "press-1"] {
        d.insert_device(&device(name, None, None)).await.unwrap();
    }
    let names: Vec<_> = d
        .list_devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["cnc-9", "conveyor-2", "press-1"]);
}

pub async fn device_revocation_keeps_the_first_time_and_touch_records_connects(storage: &Storage) {
    let d = &storage.devices;
    let gateway = device("mill-4", Some("mill-4"), None);
    d.insert_device(&gateway).await.unwrap();
    let connected = instant() + Duration::minutes(3);
    d.touch_device(gateway.id, connected).await.unwrap();
    assert_eq!(
        d.device_by_id(gateway.id)
            .await
            .unwrap()
            .unwrap()
            .last_connected_at,
        Some(connected)
    );

    let first = instant() + Duration::hours(1);
    let revoked = d.revoke_device(gateway.id, first).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    assert_eq!(revoked.last_connected_at, Some(connected));
    let again = d
        .revoke_device(gateway.id, first + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(first), "the first revocation stays");
    assert_eq!(
        d.revoke_device(DeviceId(uuid::Uuid::now_v7()), first)
            .await
            .unwrap(),
        None
    );
}
