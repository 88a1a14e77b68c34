//! Storage port of the model registry.
//!
//! Models form lines, one per kind and machine type. Each line has at most one active model
//! (exactly one once a model of it has been promoted: nothing makes a line inactive again) and
//! an activation history in which every promotion remembers the activation it replaced, so
//! that rollbacks walk back through promotions: v1 → v2 → v3, rollback → v2, rollback → v1.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{ModelActivation, ModelDraft, ModelId, ModelKind, StoredModel};

use super::StoreError;

/// Which models to list; `None` matches every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFilter {
    pub kind: Option<ModelKind>,
    pub machine_type: Option<String>,
}

/// A model to store, with what the registry assigned to it (the store assigns the version).
#[derive(Debug, Clone, Copy)]
pub struct NewModel<'a> {
    pub id: ModelId,
    pub draft: &'a ModelDraft,
    pub created_at: OffsetDateTime,
    pub created_by: &'a str,
    pub payload: &'a [u8],
    /// SHA-256 of `payload`, hex.
    pub payload_sha256: &'a str,
}

impl NewModel<'_> {
    /// The model as a store holds it once inserted with `version`: not active.
    pub fn stored(&self, version: u32) -> StoredModel {
        let d = self.draft;
        StoredModel {
            id: self.id,
            kind: d.kind,
            machine_type: d.machine_type.clone(),
            version,
            format: d.format.clone(),
            created_at: self.created_at,
            created_by: self.created_by.to_owned(),
            data_hash: d.data_hash.clone(),
            features: d.features.clone(),
            metrics: d.metrics.clone(),
            params: d.params.clone(),
            note: d.note.clone(),
            payload_bytes: self.payload.len() as u64,
            payload_sha256: self.payload_sha256.to_owned(),
            active: false,
            activated_at: None,
        }
    }
}

/// Who makes a model active, and when.
#[derive(Debug, Clone, Copy)]
pub struct Activator<'a> {
    pub by: &'a str,
    pub at: OffsetDateTime,
}

#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Stores a model, not active, with the next version of its line (1 for the first). The
    /// version is assigned atomically: concurrent inserts into one line get distinct,
    /// consecutive versions, on every node.
    async fn insert_model(&self, model: NewModel<'_>) -> Result<StoredModel, StoreError>;

    /// Models without their payloads, by kind, machine type and newest version first.
    async fn list_models(&self, filter: &ModelFilter) -> Result<Vec<StoredModel>, StoreError>;

    async fn model(&self, id: ModelId) -> Result<Option<StoredModel>, StoreError>;

    /// The payload exactly as inserted.
    async fn model_payload(&self, id: ModelId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Makes the model the active one of its line, atomically (one active model per line even
    /// when nodes promote concurrently), and records the activation with the one it replaced
    /// as where a rollback returns to. Promoting the active model changes and records nothing.
    /// `None` if there is no such model.
    async fn promote_model(
        &self,
        id: ModelId,
        activator: Activator<'_>,
    ) -> Result<Option<StoredModel>, StoreError>;

    /// The model a rollback of the line would make active now: the one the current
    /// activation replaced (following rollbacks back through earlier promotions). `None` when
    /// there is none.
    async fn rollback_target(
        &self,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<Option<StoredModel>, StoreError>;

    /// Rolls the line back, atomically, if its rollback target is still `expected`: makes it
    /// active and records the activation, whose own rollback target is the one `expected` had.
    /// `None`, changing nothing, when the target is another model or there is none (the line
    /// changed since [`rollback_target`](Self::rollback_target) was read).
    async fn roll_back_model(
        &self,
        kind: ModelKind,
        machine_type: &str,
        expected: ModelId,
        activator: Activator<'_>,
    ) -> Result<Option<StoredModel>, StoreError>;

    /// The line's activations, newest first, at most `limit`.
    async fn model_activations(
        &self,
        kind: ModelKind,
        machine_type: &str,
        limit: usize,
    ) -> Result<Vec<ModelActivation>, StoreError>;

    /// The active model of every line that has one: what a cache reload compares against.
    async fn active_models(&self) -> Result<Vec<StoredModel>, StoreError>;
}
