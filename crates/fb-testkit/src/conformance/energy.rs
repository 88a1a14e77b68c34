use time::Duration;
use uuid::Uuid;

use fb_core::energy::{
    CommandState, EnergyAction, Proposal, Recommendation, RecommendationId, RecommendationStatus,
};
use fb_core::identity::SiteScope;
use fb_core::plant::MachineId;
use fb_core::ports::{RecommendationFilter, Storage, StoreError};

use crate::fixtures::instant;

fn proposed(machine: &str, site: &str, action: EnergyAction) -> Recommendation {
    Recommendation::proposed(
        RecommendationId(Uuid::now_v7()),
        Proposal {
            machine: MachineId(machine.into()),
            site: site.into(),
            action,
            expected_kwh_saved: 1.25,
            expected_cost_saved: 0.375,
            expected_co2_kg_saved: 0.625,
            reason: "running but idle for 15 minutes".into(),
        },
        instant() + Duration::microseconds(123_457),
        instant() + Duration::hours(1),
    )
}

pub async fn recommendations_round_trip_and_are_decided_once(storage: &Storage) {
    let store = &storage.recommendations;
    let r = proposed("press-01", "plant-a", EnergyAction::Standby);
    store.insert_recommendation(&r).await.unwrap();
    assert_eq!(store.recommendation(r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(
        store
            .open_recommendation(&r.machine, EnergyAction::Standby)
            .await
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store
            .recommendation(RecommendationId(Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );

    let command = Uuid::now_v7();
    let at = instant() + Duration::minutes(5);
    assert!(
        store
            .decide_recommendation(
                r.id,
                RecommendationStatus::Accepted,
                "user:sue",
                at,
                Some(command)
            )
            .await
            .unwrap()
    );
    // Decided once: a second decision, e.g. a dismissal racing the acceptance, changes nothing.
    assert!(
        !store
            .decide_recommendation(r.id, RecommendationStatus::Dismissed, "user:bob", at, None)
            .await
            .unwrap()
    );
    let stored = store.recommendation(r.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RecommendationStatus::Accepted);
    assert_eq!(stored.decided_by.as_deref(), Some("user:sue"));
    assert_eq!(stored.decided_at, Some(at));
    assert_eq!(stored.command_id, Some(command));
    assert_eq!(stored.command_state, Some(CommandState::Pending));
    assert_eq!(
        store
            .open_recommendation(&r.machine, EnergyAction::Standby)
            .await
            .unwrap(),
        None
    );

    assert!(store.mark_command_sent(r.id).await.unwrap());
    assert!(!store.mark_command_sent(r.id).await.unwrap());
    let stored = store.recommendation(r.id).await.unwrap().unwrap();
    assert_eq!(stored.command_state, Some(CommandState::Sent));
}

pub async fn one_open_recommendation_per_machine_and_action(storage: &Storage) {
    let store = &storage.recommendations;
    let first = proposed("press-02", "plant-a", EnergyAction::Standby);
    store.insert_recommendation(&first).await.unwrap();
    let again = proposed("press-02", "plant-a", EnergyAction::Standby);
    assert!(matches!(
        store.insert_recommendation(&again).await,
        Err(StoreError::Conflict {
            constraint: "recommendation_open"
        })
    ));
    // Another action of the same machine, or the same action once the first is decided, is fine.
    store
        .insert_recommendation(&proposed("press-02", "plant-a", EnergyAction::ShiftOffPeak))
        .await
        .unwrap();
    assert!(
        store
            .decide_recommendation(
                first.id,
                RecommendationStatus::Dismissed,
                "user:sue",
                instant(),
                None
            )
            .await
            .unwrap()
    );
    let stored = store.recommendation(first.id).await.unwrap().unwrap();
    assert_eq!(stored.command_id, None);
    assert_eq!(stored.command_state, None);
    store.insert_recommendation(&again).await.unwrap();
}

pub async fn recommendations_expire_and_are_listed_by_site_and_status(storage: &Storage) {
    let store = &storage.recommendations;
    let a = proposed("pump-01", "plant-a", EnergyAction::Standby);
    let mut b = proposed("pump-02", "plant-b", EnergyAction::LoadReduction);
    b.expires_at = instant() + Duration::hours(3);
    let c = proposed("pump-03", "plant-a", EnergyAction::ShiftOffPeak);
    for r in [&a, &b, &c] {
        store.insert_recommendation(r).await.unwrap();
    }
    // At the hour a and c expire, b (three hours) stays.
    assert_eq!(
        store
            .expire_recommendations(instant() + Duration::hours(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .expire_recommendations(instant() + Duration::hours(1))
            .await
            .unwrap(),
        0
    );

    let ids = |rs: Vec<Recommendation>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = RecommendationFilter::new(SiteScope::All, 10);
    assert_eq!(
        ids(store.list_recommendations(&all).await.unwrap()),
        [c.id, b.id, a.id]
    );
    let plant_a = RecommendationFilter::new(SiteScope::Sites(["plant-a".to_owned()].into()), 10);
    assert_eq!(
        ids(store.list_recommendations(&plant_a).await.unwrap()),
        [c.id, a.id]
    );
    let proposed_only = RecommendationFilter {
        status: Some(RecommendationStatus::Proposed),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_recommendations(&proposed_only).await.unwrap()),
        [b.id]
    );
    let of_machine = RecommendationFilter {
        machine: Some(MachineId("pump-01".into())),
        limit: 1,
        ..all
    };
    let listed = store.list_recommendations(&of_machine).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RecommendationStatus::Expired);
    let none = RecommendationFilter::new(SiteScope::Sites(Default::default()), 10);
    assert!(store.list_recommendations(&none).await.unwrap().is_empty());
}
