use time::Duration;

use fb_core::identity::SiteScope;
use fb_core::plant::{MachineId, MachineStatus};
use fb_core::ports::{Storage, StoreError};

use crate::fixtures::{instant, machine};

pub async fn machines_round_trip(storage: &Storage) {
    let store = &storage.machines;
    let press = machine("press-01");
    store.insert_machine(&press).await.unwrap();
    assert_eq!(store.machine(&press.id).await.unwrap(), Some(press.clone()));

    // Optional fields empty, one sensor, no class.
    let mut bare = machine("pump-7");
    bare.machine_class = None;
    bare.location.area = None;
    bare.location.line = None;
    bare.location.cell = None;
    bare.last_maintenance = None;
    bare.health_score = None;
    bare.sensors.truncate(1);
    store.insert_machine(&bare).await.unwrap();
    assert_eq!(store.machine(&bare.id).await.unwrap(), Some(bare));
    assert_eq!(
        store.machine(&MachineId("nope".into())).await.unwrap(),
        None
    );
}

pub async fn machine_ids_are_unique(storage: &Storage) {
    let store = &storage.machines;
    store.insert_machine(&machine("cnc-1")).await.unwrap();
    let err = store.insert_machine(&machine("cnc-1")).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: "machine_id"
            }
        ),
        "{err:?}"
    );
}

pub async fn machines_are_listed_by_id(storage: &Storage) {
    let store = &storage.machines;
    for id in ["m-3", "m-1", "m-2"] {
        store.insert_machine(&machine(id)).await.unwrap();
    }
    let ids: Vec<_> = store
        .list_machines(&SiteScope::All)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.0)
        .collect();
    assert_eq!(ids, ["m-1", "m-2", "m-3"]);
}

pub async fn machines_update_and_delete(storage: &Storage) {
    let store = &storage.machines;
    let mut m = machine("oven-2");
    store.insert_machine(&m).await.unwrap();
    m.status = MachineStatus::Maintenance;
    m.sensors[0].warning_high = Some(75.0);
    m.failure_probability = Some(0.42);
    m.updated_at = instant() + Duration::hours(2);
    assert!(store.update_machine(&m).await.unwrap());
    assert_eq!(store.machine(&m.id).await.unwrap(), Some(m.clone()));

    assert!(store.delete_machine(&m.id).await.unwrap());
    assert!(!store.delete_machine(&m.id).await.unwrap());
    assert_eq!(store.machine(&m.id).await.unwrap(), None);
    let mut ghost = machine("ghost");
    ghost.name = "never stored".into();
    assert!(!store.update_machine(&ghost).await.unwrap());
}

pub async fn machines_are_listed_by_site(storage: &Storage) {
    let store = &storage.machines;
    for (id, site) in [
        ("a-2", "plant-a"),
        ("b-1", "plant-b"),
        ("a-1", "plant-a"),
        ("c-1", "plant-c"),
        ("q-1", "x') OR ('1' = '1"),
    ] {
        let mut m = machine(id);
        m.location.site = site.into();
        store.insert_machine(&m).await.unwrap();
    }
    let listed = |sites: SiteScope| async move {
        store
            .list_machines(&sites)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id.0)
            .collect::<Vec<_>>()
    };
    let named = |names: &[&str]| SiteScope::named("sites", names).unwrap();
    assert_eq!(listed(named(&["plant-a"])).await, ["a-1", "a-2"]);
    assert_eq!(
        listed(named(&["plant-c", "plant-a"])).await,
        ["a-1", "a-2", "c-1"]
    );
    // Site names are bound, never spliced into the SQL.
    assert_eq!(listed(named(&["x') OR ('1' = '1"])).await, ["q-1"]);
    assert!(listed(named(&["plant-z"])).await.is_empty());
    assert!(
        listed(SiteScope::Sites(Default::default()))
            .await
            .is_empty()
    );
    assert_eq!(listed(SiteScope::All).await.len(), 5);
}
