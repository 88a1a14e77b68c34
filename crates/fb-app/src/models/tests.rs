use std::sync::atomic::{AtomicUsize, Ordering};

use fb_core::identity::{Role, SiteScope};
use fb_core::model::ActivationAction;
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use fb_testkit::fixtures::model_draft;

use super::*;

const PUMP: &str = "centrifugal_pump";

/// Reads `test/1` payloads of the form `ok:<text>` into the text; refuses anything else.
struct TextLoader {
    formats: Vec<String>,
    loads: Arc<AtomicUsize>,
}

impl TextLoader {
    fn reading(formats: &[&str]) -> Self {
        Self {
            formats: formats.iter().map(|f| (*f).to_owned()).collect(),
            loads: Arc::default(),
        }
    }
}

impl ModelLoader for TextLoader {
    type Loaded = String;

    fn formats(&self) -> &[String] {
        &self.formats
    }

    fn load(&self, _: &StoredModel, payload: &[u8]) -> Result<String, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
        text.strip_prefix("ok:")
            .map(str::to_owned)
            .ok_or_else(|| format!("{text:?} is not a test model"))
    }
}

/// One node: a registry service on a shared store.
fn node(
    store: &Arc<MemoryStore>,
    clock: &Arc<FakeClock>,
    loader: TextLoader,
) -> Service<TextLoader> {
    Service::new(store.clone(), clock.clone(), loader)
}

struct Fixture {
    service: Service<TextLoader>,
    store: Arc<MemoryStore>,
    clock: Arc<FakeClock>,
    admin: Principal,
}

fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FakeClock::new());
    Fixture {
        service: node(&store, &clock, TextLoader::reading(&["test/1"])),
        store,
        clock,
        admin: caller(Role::Admin),
    }
}

fn caller(role: Role) -> Principal {
    fb_testkit::fixtures::principal(role)
}

fn draft(format: &str) -> ModelDraft {
    ModelDraft {
        format: format.to_owned(),
        ..model_draft(ModelKind::Rul, PUMP)
    }
}

impl Fixture {
    async fn register(&self, payload: &str) -> StoredModel {
        self.register_as(&draft("test/1"), payload).await
    }

    async fn register_as(&self, draft: &ModelDraft, payload: &str) -> StoredModel {
        self.service
            .register(&self.admin, draft.clone(), payload.as_bytes().to_vec())
            .await
            .unwrap()
    }

    fn active_text(&self) -> Option<String> {
        active_text(&self.service)
    }
}

fn active_text(service: &Service<TextLoader>) -> Option<String> {
    service
        .active(ModelKind::Rul, PUMP)
        .map(|m| format!("v{} {}", m.model.version, m.loaded))
}

#[tokio::test]
async fn registered_models_get_versions_their_author_and_the_payload_hash() {
    let f = fixture();
    let first = f.register("ok:first").await;
    let second = f.register("ok:second").await;
    assert_eq!((first.version, second.version), (1, 2));
    assert_eq!(first.created_by, "user:admin-user");
    assert_eq!(first.created_at, f.clock.now_for_tests());
    assert_eq!(first.payload_bytes, 8);
    // SHA-256 of "ok:first".
    assert_eq!(first.payload_sha256, sha256_hex(b"ok:first"));
    assert_eq!(first.payload_sha256.len(), 64);
    assert!(!first.active && !second.active);
    assert_eq!(
        f.store.model_payload(second.id).await.unwrap().unwrap(),
        b"ok:second"
    );
    assert_eq!(f.active_text(), None, "registering activates nothing");
}

#[tokio::test]
async fn registration_checks_every_field_and_the_permission() {
    let f = fixture();
    let mut bad = draft("test");
    bad.machine_type = "  ".to_owned();
    bad.features.clear();
    let err = f
        .service
        .register(&f.admin, bad, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::invalid_field);
    let fields: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["machine_type", "format", "features", "payload"]);

    for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
        let err = f
            .service
            .register(&caller(role), draft("test/1"), b"ok:x".to_vec())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::permission_denied, "{role}");
    }
    let mut scoped = f.admin.clone();
    scoped.sites = SiteScope::named("sites", &["plant-a"]).unwrap();
    let err = f
        .service
        .register(&scoped, draft("test/1"), b"ok:x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::site_out_of_scope);
    assert!(
        f.store
            .list_models(&ModelFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn readers_list_and_get_but_only_admins_promote_and_roll_back() {
    let f = fixture();
    let model = f.register("ok:one").await;
    for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
        let reader = caller(role);
        let listed = f
            .service
            .list(&reader, &ModelFilter::default())
            .await
            .unwrap();
        assert_eq!(listed, std::slice::from_ref(&model));
        assert_eq!(f.service.get(&reader, model.id).await.unwrap(), model);
        let err = f.service.promote(&reader, model.id).await.unwrap_err();
        assert_eq!(err.code(), Code::permission_denied, "{role}");
        let err = f
            .service
            .rollback(&reader, ModelKind::Rul, PUMP)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::permission_denied, "{role}");
    }
    assert_eq!(f.active_text(), None);
    let missing = f
        .service
        .get(&f.admin, ModelId(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::model_not_found);
}

#[tokio::test]
async fn promotion_swaps_the_cached_model_at_once() {
    let f = fixture();
    let v1 = f.register("ok:first").await;
    let v2 = f.register("ok:second").await;

    let promoted = f.service.promote(&f.admin, v1.id).await.unwrap();
    assert!(promoted.active);
    assert_eq!(promoted.activated_at, Some(f.clock.now_for_tests()));
    assert_eq!(f.active_text().as_deref(), Some("v1 first"));

    f.clock.advance(time::Duration::minutes(5));
    f.service.promote(&f.admin, v2.id).await.unwrap();
    assert_eq!(f.active_text().as_deref(), Some("v2 second"));
    assert!(!f.service.get(&f.admin, v1.id).await.unwrap().active);

    // Promoting the active model again neither reloads it nor records an activation.
    let loads = f.service.loader.loads.load(Ordering::SeqCst);
    f.service.promote(&f.admin, v2.id).await.unwrap();
    assert_eq!(f.service.loader.loads.load(Ordering::SeqCst), loads);
    let history = f
        .service
        .activations(&caller(Role::Viewer), ModelKind::Rul, PUMP)
        .await
        .unwrap();
    let who: Vec<_> = history
        .iter()
        .map(|a| (a.version, a.action, a.activated_by.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            (2, ActivationAction::Promote, "user:admin-user"),
            (1, ActivationAction::Promote, "user:admin-user")
        ]
    );
    let missing = f.service.promote(&f.admin, ModelId(Uuid::now_v7())).await;
    assert_eq!(missing.unwrap_err().code(), Code::model_not_found);
}

#[tokio::test]
async fn rollback_returns_to_the_previous_model_and_then_further_back() {
    let f = fixture();
    let none = f.service.rollback(&f.admin, ModelKind::Rul, PUMP).await;
    assert_eq!(none.unwrap_err().code(), Code::no_previous_model);
    for payload in ["ok:first", "ok:second", "ok:third"] {
        let model = f.register(payload).await;
        f.service.promote(&f.admin, model.id).await.unwrap();
    }
    assert_eq!(f.active_text().as_deref(), Some("v3 third"));

    let back = f
        .service
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap();
    assert_eq!((back.version, back.active), (2, true));
    assert_eq!(f.active_text().as_deref(), Some("v2 second"));
    f.service
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap();
    assert_eq!(f.active_text().as_deref(), Some("v1 first"));
    let err = f
        .service
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::no_previous_model);
    assert_eq!(f.active_text().as_deref(), Some("v1 first"));

    let other_line = f.service.rollback(&f.admin, ModelKind::Failure, PUMP).await;
    assert_eq!(other_line.unwrap_err().code(), Code::no_previous_model);
    let bad = f.service.rollback(&f.admin, ModelKind::Rul, "").await;
    assert_eq!(bad.unwrap_err().field_errors()[0].field, "machine_type");
}

#[tokio::test]
async fn a_model_this_node_cannot_load_is_never_made_active() {
    let f = fixture();
    let good = f.register("ok:good").await;
    f.service.promote(&f.admin, good.id).await.unwrap();

    let broken = f.register("garbage").await;
    let err = f.service.promote(&f.admin, broken.id).await.unwrap_err();
    assert_eq!(err.code(), Code::model_payload_invalid);
    assert!(err.to_string().contains("not a test model"), "{err}");

    let newer = f.register_as(&draft("test/2"), "ok:newer").await;
    let err = f.service.promote(&f.admin, newer.id).await.unwrap_err();
    assert_eq!(err.code(), Code::model_format_unsupported);
    assert_eq!(
        err.to_string(),
        "this server cannot read models of format \"test/2\"; it reads test/1"
    );

    // A payload that no longer matches its hash (a damaged row) is refused before loading.
    let damaged_draft = draft("test/1");
    let damaged = f
        .store
        .insert_model(NewModel {
            id: ModelId(Uuid::now_v7()),
            draft: &damaged_draft,
            created_at: f.clock.now_for_tests(),
            created_by: "system",
            payload: b"ok:tampered",
            payload_sha256: &sha256_hex(b"ok:original"),
        })
        .await
        .unwrap();
    let err = f.service.promote(&f.admin, damaged.id).await.unwrap_err();
    assert_eq!(err.code(), Code::model_payload_invalid);
    assert!(err.to_string().contains("SHA-256"), "{err}");

    assert_eq!(f.active_text().as_deref(), Some("v1 good"));
    let active = f.store.active_models().await.unwrap();
    assert_eq!(active.iter().map(|m| m.id).collect::<Vec<_>>(), [good.id]);
}

#[tokio::test]
async fn a_rollback_to_a_model_this_node_cannot_load_changes_nothing() {
    let f = fixture();
    // Another node, which reads a format this one does not, promoted v1 and then this node v2.
    let lenient = node(
        &f.store,
        &f.clock,
        TextLoader::reading(&["test/1", "test/2"]),
    );
    let v1 = f.register_as(&draft("test/2"), "ok:elsewhere").await;
    lenient.promote(&f.admin, v1.id).await.unwrap();
    let v2 = f.register("ok:here").await;
    f.service.promote(&f.admin, v2.id).await.unwrap();

    let err = f
        .service
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::model_format_unsupported);
    assert_eq!(f.active_text().as_deref(), Some("v2 here"));
    assert!(f.service.get(&f.admin, v2.id).await.unwrap().active);
}

#[tokio::test]
async fn two_nodes_on_one_store_converge_after_a_reload() {
    let f = fixture();
    let other = node(&f.store, &f.clock, TextLoader::reading(&["test/1"]));
    assert_eq!(other.reload().await.unwrap(), Reloaded::default());

    let v1 = f.register("ok:first").await;
    f.service.promote(&f.admin, v1.id).await.unwrap();
    assert_eq!(
        active_text(&other),
        None,
        "the other node has not looked yet"
    );
    assert_eq!(
        other.reload().await.unwrap(),
        Reloaded {
            loaded: 1,
            failed: 0
        }
    );
    assert_eq!(active_text(&other).as_deref(), Some("v1 first"));

    let v2 = f.register("ok:second").await;
    other.promote(&f.admin, v2.id).await.unwrap();
    assert_eq!(active_text(&f.service).as_deref(), Some("v1 first"));
    f.service.reload().await.unwrap();
    assert_eq!(active_text(&f.service).as_deref(), Some("v2 second"));

    f.service
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap();
    other.reload().await.unwrap();
    assert_eq!(active_text(&other).as_deref(), Some("v1 first"));
    // Nothing changed since: a reload loads nothing.
    let loads = other.loader.loads.load(Ordering::SeqCst);
    assert_eq!(other.reload().await.unwrap(), Reloaded::default());
    assert_eq!(other.loader.loads.load(Ordering::SeqCst), loads);
}

#[tokio::test]
async fn a_broken_reload_keeps_the_previous_model_and_is_not_retried() {
    let f = fixture();
    let v1 = f.register("ok:first").await;
    f.service.promote(&f.admin, v1.id).await.unwrap();
    // Another node with a wider loader activates a model this node refuses.
    let lenient = node(
        &f.store,
        &f.clock,
        TextLoader::reading(&["test/1", "test/2"]),
    );
    let v2 = f.register_as(&draft("test/2"), "ok:newer").await;
    lenient.promote(&f.admin, v2.id).await.unwrap();

    assert_eq!(
        f.service.reload().await.unwrap(),
        Reloaded {
            loaded: 0,
            failed: 1
        }
    );
    assert_eq!(f.active_text().as_deref(), Some("v1 first"));
    assert_eq!(f.service.reload().await.unwrap(), Reloaded::default());
    assert_eq!(f.active_text().as_deref(), Some("v1 first"));

    // Once a model this node reads is active again, it follows.
    lenient
        .rollback(&f.admin, ModelKind::Rul, PUMP)
        .await
        .unwrap();
    let v3 = f.register("ok:third").await;
    lenient.promote(&f.admin, v3.id).await.unwrap();
    assert_eq!(
        f.service.reload().await.unwrap(),
        Reloaded {
            loaded: 1,
            failed: 0
        }
    );
    assert_eq!(f.active_text().as_deref(), Some("v3 third"));
}
