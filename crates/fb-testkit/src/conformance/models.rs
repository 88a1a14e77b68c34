use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use fb_core::model::{ActivationAction, ModelActivation, ModelId, ModelKind, StoredModel};
use fb_core::ports::{Activator, ModelFilter, ModelStore, Storage};

use crate::fixtures::{instant, model_draft, new_model};

const PUMP: &str = "centrifugal_pump";
const PRESS: &str = "hydraulic_press";

/// Inserts a model of the line with a payload naming it.
async fn insert(store: &dyn ModelStore, kind: ModelKind, machine_type: &str) -> StoredModel {
    let draft = model_draft(kind, machine_type);
    let payload = format!("{{\"model\": \"{kind}/{machine_type}\"}}");
    store
        .insert_model(new_model(&draft, payload.as_bytes()))
        .await
        .unwrap()
}

fn by(who: &str, minutes: i64) -> Activator<'_> {
    Activator {
        by: who,
        at: instant() + Duration::minutes(minutes),
    }
}

/// (seq, version, action, by) of each activation.
fn summary(history: &[ModelActivation]) -> Vec<(u64, u32, ActivationAction, &str)> {
    history
        .iter()
        .map(|a| (a.seq, a.version, a.action, a.activated_by.as_str()))
        .collect()
}

async fn active_ids(store: &dyn ModelStore) -> Vec<(ModelKind, String, u32)> {
    let mut active: Vec<_> = store
        .active_models()
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            assert!(m.active, "active_models lists inactive {m:?}");
            (m.kind, m.machine_type, m.version)
        })
        .collect();
    active.sort();
    active
}

pub async fn models_round_trip_without_payloads(storage: &Storage) {
    let store = &*storage.models;
    let mut draft = model_draft(ModelKind::Rul, PUMP);
    // Every byte value, NUL included, comes back as it went in.
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let new = new_model(&draft, &payload);
    let stored = store.insert_model(new).await.unwrap();
    let expected = StoredModel {
        id: new.id,
        kind: ModelKind::Rul,
        machine_type: PUMP.to_owned(),
        version: 1,
        format: draft.format.clone(),
        created_at: instant(),
        created_by: "user:trainer".to_owned(),
        data_hash: draft.data_hash.clone(),
        features: draft.features.clone(),
        metrics: draft.metrics.clone(),
        params: draft.params.clone(),
        note: draft.note.clone(),
        payload_bytes: 70_000,
        payload_sha256: new.payload_sha256.to_owned(),
        active: false,
        activated_at: None,
    };
    assert_eq!(stored, expected);
    assert_eq!(store.model(new.id).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.model_payload(new.id).await.unwrap(), Some(payload));

    draft.note = None;
    draft.params.clear();
    let bare = store.insert_model(new_model(&draft, b"{}")).await.unwrap();
    assert_eq!(bare.note, None);
    assert!(bare.params.is_empty());
    assert_eq!(store.model(bare.id).await.unwrap(), Some(bare));

    let unknown = ModelId(uuid::Uuid::now_v7());
    assert_eq!(store.model(unknown).await.unwrap(), None);
    assert_eq!(store.model_payload(unknown).await.unwrap(), None);
}

pub async fn model_versions_count_per_line_and_lists_filter(storage: &Storage) {
    let store = &*storage.models;
    let pump_1 = insert(store, ModelKind::Rul, PUMP).await;
    let pump_2 = insert(store, ModelKind::Rul, PUMP).await;
    let press_1 = insert(store, ModelKind::Rul, PRESS).await;
    let failure_1 = insert(store, ModelKind::Failure, PUMP).await;
    let pump_3 = insert(store, ModelKind::Rul, PUMP).await;
    let versions =
        |models: &[StoredModel]| -> Vec<u32> { models.iter().map(|m| m.version).collect() };
    assert_eq!(
        versions(&[
            pump_1.clone(),
            pump_2.clone(),
            pump_3.clone(),
            press_1.clone(),
            failure_1.clone()
        ]),
        [1, 2, 3, 1, 1]
    );

    let list = |kind: Option<ModelKind>, machine_type: Option<&str>| {
        let filter = ModelFilter {
            kind,
            machine_type: machine_type.map(str::to_owned),
        };
        async move {
            store
                .list_models(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    // By kind (its name), machine type, newest version first.
    assert_eq!(
        list(None, None).await,
        [failure_1.id, pump_3.id, pump_2.id, pump_1.id, press_1.id]
    );
    assert_eq!(
        list(Some(ModelKind::Rul), Some(PUMP)).await,
        [pump_3.id, pump_2.id, pump_1.id]
    );
    assert_eq!(
        list(None, Some(PUMP)).await,
        [failure_1.id, pump_3.id, pump_2.id, pump_1.id]
    );
    assert_eq!(list(Some(ModelKind::Failure), None).await, [failure_1.id]);
    assert_eq!(list(Some(ModelKind::Failure), Some(PRESS)).await, []);
}

pub async fn concurrent_model_inserts_get_consecutive_versions(storage: &Storage) {
    let store = storage.models.clone();
    let inserts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { insert(&*store, ModelKind::Failure, PRESS).await.version })
    });
    let mut versions = Vec::new();
    for insert in inserts {
        versions.push(insert.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u32>>());
}

pub async fn promotion_keeps_one_active_model_per_line(storage: &Storage) {
    let store = &*storage.models;
    let v1 = insert(store, ModelKind::Rul, PUMP).await;
    let v2 = insert(store, ModelKind::Rul, PUMP).await;
    let other = insert(store, ModelKind::Rul, PRESS).await;
    assert_eq!(active_ids(store).await, []);

    let promoted = store
        .promote_model(v1.id, by("user:ana", 1))
        .await
        .unwrap()
        .unwrap();
    assert!(promoted.active);
    assert_eq!(
        promoted.activated_at,
        Some(instant() + Duration::minutes(1))
    );
    store
        .promote_model(other.id, by("user:ana", 2))
        .await
        .unwrap()
        .unwrap();
    let promoted = store
        .promote_model(v2.id, by("user:bo", 3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        promoted.activated_at,
        Some(instant() + Duration::minutes(3))
    );

    let v1_now = store.model(v1.id).await.unwrap().unwrap();
    assert!(!v1_now.active);
    assert_eq!(v1_now.activated_at, None);
    assert_eq!(
        active_ids(store).await,
        [
            (ModelKind::Rul, PUMP.to_owned(), 2),
            (ModelKind::Rul, PRESS.to_owned(), 1)
        ]
    );
    let listed: Vec<bool> = store
        .list_models(&ModelFilter {
            kind: Some(ModelKind::Rul),
            machine_type: Some(PUMP.to_owned()),
        })
        .await
        .unwrap()
        .iter()
        .map(|m| m.active)
        .collect();
    assert_eq!(listed, [true, false], "v2 active, v1 not");

    // Promoting the active model again changes nothing and records nothing.
    let again = store
        .promote_model(v2.id, by("user:cy", 9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.activated_at, Some(instant() + Duration::minutes(3)));
    let history = store
        .model_activations(ModelKind::Rul, PUMP, 10)
        .await
        .unwrap();
    assert_eq!(
        summary(&history),
        [
            (2, 2, ActivationAction::Promote, "user:bo"),
            (1, 1, ActivationAction::Promote, "user:ana")
        ]
    );
    assert_eq!(history[0].model_id, v2.id);
    assert_eq!(history[0].activated_at, instant() + Duration::minutes(3));
    assert_eq!(
        store
            .model_activations(ModelKind::Rul, PUMP, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .promote_model(ModelId(uuid::Uuid::now_v7()), by("user:ana", 4))
            .await
            .unwrap(),
        None
    );
}

pub async fn concurrent_promotions_leave_one_active_model(storage: &Storage) {
    let store = storage.models.clone();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(insert(&*store, ModelKind::Failure, PUMP).await.id);
    }
    let promotions = ids.iter().map(|id| {
        let (store, id) = (store.clone(), *id);
        tokio::spawn(async move { store.promote_model(id, by("user:ana", 1)).await.unwrap() })
    });
    for promotion in promotions {
        assert!(promotion.await.unwrap().is_some());
    }
    let models = store.list_models(&ModelFilter::default()).await.unwrap();
    let active: Vec<_> = models.iter().filter(|m| m.active).collect();
    assert_eq!(active.len(), 1, "exactly one active model: {models:?}");

    // The history is one sequence, each promotion replacing the one before it.
    let history = store
        .model_activations(ModelKind::Failure, PUMP, 100)
        .await
        .unwrap();
    let seqs: Vec<u64> = history.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [6, 5, 4, 3, 2, 1]);
    let promoted: BTreeSet<ModelId> = history.iter().map(|a| a.model_id).collect();
    assert_eq!(promoted, ids.iter().copied().collect());
    assert_eq!(history[0].model_id, active[0].id);
    let target = store
        .rollback_target(ModelKind::Failure, PUMP)
        .await
        .unwrap();
    assert_eq!(target.map(|m| m.id), Some(history[1].model_id));
}

async fn rollback_version(store: &dyn ModelStore) -> Option<u32> {
    store
        .rollback_target(ModelKind::Rul, PRESS)
        .await
        .unwrap()
        .map(|m| m.version)
}

pub async fn rollback_walks_back_through_promotions(storage: &Storage) {
    let store = &*storage.models;
    let v1 = insert(store, ModelKind::Rul, PRESS).await;
    let v2 = insert(store, ModelKind::Rul, PRESS).await;
    let v3 = insert(store, ModelKind::Rul, PRESS).await;
    assert_eq!(rollback_version(store).await, None, "nothing active yet");
    for (minute, model) in [&v1, &v2, &v3].into_iter().enumerate() {
        store
            .promote_model(model.id, by("user:ana", minute as i64))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(rollback_version(store).await, Some(2));

    // Only the current target is rolled back to.
    let back = |expected: ModelId, minute: i64| async move {
        store
            .roll_back_model(ModelKind::Rul, PRESS, expected, by("user:bo", minute))
            .await
            .unwrap()
    };
    assert_eq!(back(v1.id, 10).await, None);
    assert!(store.model(v3.id).await.unwrap().unwrap().active);
    let rolled = back(v2.id, 10).await.unwrap();
    assert_eq!((rolled.id, rolled.active), (v2.id, true));
    assert_eq!(rolled.activated_at, Some(instant() + Duration::minutes(10)));
    assert_eq!(rollback_version(store).await, Some(1));
    back(v1.id, 11).await.unwrap();
    assert_eq!(rollback_version(store).await, None, "v1 replaced nothing");
    assert_eq!(back(v1.id, 12).await, None);
    assert_eq!(
        active_ids(store).await,
        [(ModelKind::Rul, PRESS.to_owned(), 1)]
    );

    // A promotion after rollbacks returns, when rolled back, to the model it replaced.
    store
        .promote_model(v3.id, by("user:ana", 20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rollback_version(store).await, Some(1));

    let history = store
        .model_activations(ModelKind::Rul, PRESS, 100)
        .await
        .unwrap();
    assert_eq!(
        summary(&history),
        [
            (6, 3, ActivationAction::Promote, "user:ana"),
            (5, 1, ActivationAction::Rollback, "user:bo"),
            (4, 2, ActivationAction::Rollback, "user:bo"),
            (3, 3, ActivationAction::Promote, "user:ana"),
            (2, 2, ActivationAction::Promote, "user:ana"),
            (1, 1, ActivationAction::Promote, "user:ana"),
        ]
    );
    assert_eq!(history[1].activated_at, instant() + Duration::minutes(11));
}

pub async fn concurrent_rollbacks_roll_back_once(storage: &Storage) {
    let store: Arc<dyn ModelStore> = storage.models.clone();
    let v1 = insert(&*store, ModelKind::Failure, PRESS).await;
    let v2 = insert(&*store, ModelKind::Failure, PRESS).await;
    store
        .promote_model(v1.id, by("user:ana", 1))
        .await
        .unwrap()
        .unwrap();
    store
        .promote_model(v2.id, by("user:ana", 2))
        .await
        .unwrap()
        .unwrap();
    let rollbacks = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .roll_back_model(ModelKind::Failure, PRESS, v1.id, by("user:bo", 3))
                .await
                .unwrap()
        })
    });
    let mut done = 0;
    for rollback in rollbacks {
        done += usize::from(rollback.await.unwrap().is_some());
    }
    assert_eq!(done, 1, "one rollback; the others found the line changed");
    assert_eq!(
        active_ids(&*store).await,
        [(ModelKind::Failure, PRESS.to_owned(), 1)]
    );
    let history = store
        .model_activations(ModelKind::Failure, PRESS, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
}
