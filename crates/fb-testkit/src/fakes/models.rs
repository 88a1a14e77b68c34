//! The model registry in memory, with the stores' rules: versions per line, one active model
//! per line, rollbacks that walk back through promotions.

use std::collections::BTreeMap;

use async_trait::async_trait;
use uuid::Uuid;

use fb_core::model::{ActivationAction, ModelActivation, ModelId, ModelKind, StoredModel};
use fb_core::ports::{Activator, ModelFilter, ModelStore, NewModel, StoreError};

use super::{MemoryStore, State};

type LineKey = (ModelKind, String);

#[derive(Default)]
pub(super) struct ModelState {
    /// Stored without their activation state, which is the line's.
    models: BTreeMap<ModelId, (StoredModel, Vec<u8>)>,
    lines: BTreeMap<LineKey, Line>,
    activations: BTreeMap<Uuid, Activation>,
}

#[derive(Default)]
struct Line {
    last_version: u32,
    activations: u64,
    current: Option<Uuid>,
}

struct Activation {
    record: ModelActivation,
    rollback_to: Option<Uuid>,
}

impl ModelState {
    fn line_key(kind: ModelKind, machine_type: &str) -> LineKey {
        (kind, machine_type.to_owned())
    }

    fn current(&self, key: &LineKey) -> Option<&Activation> {
        let id = self.lines.get(key)?.current?;
        self.activations.get(&id)
    }

    /// The model with its activation state.
    fn read(&self, id: ModelId) -> Option<StoredModel> {
        let (model, _) = self.models.get(&id)?;
        let mut model = model.clone();
        let key = Self::line_key(model.kind, &model.machine_type);
        if let Some(current) = self.current(&key)
            && current.record.model_id == id
        {
            model.active = true;
            model.activated_at = Some(current.record.activated_at);
        }
        Some(model)
    }

    /// Where a rollback of the line goes: the activation the current one replaced.
    fn rollback_target(&self, key: &LineKey) -> Option<&Activation> {
        let target = self.current(key)?.rollback_to?;
        self.activations.get(&target)
    }

    fn activate(
        &mut self,
        key: LineKey,
        model_id: ModelId,
        action: ActivationAction,
        rollback_to: Option<Uuid>,
        activator: Activator<'_>,
    ) -> Option<StoredModel> {
        let version = self.models.get(&model_id)?.0.version;
        let line = self.lines.entry(key.clone()).or_default();
        line.activations += 1;
        let id = Uuid::now_v7();
        line.current = Some(id);
        let record = ModelActivation {
            id,
            kind: key.0,
            machine_type: key.1,
            seq: line.activations,
            model_id,
            version,
            action,
            activated_at: activator.at,
            activated_by: activator.by.to_owned(),
        };
        self.activations.insert(
            id,
            Activation {
                record,
                rollback_to,
            },
        );
        self.read(model_id)
    }
}

impl MemoryStore {
    fn models<T>(&self, f: impl FnOnce(&mut ModelState) -> T) -> T {
        self.with(|s: &mut State| f(&mut s.models))
    }
}

#[async_trait]
impl ModelStore for MemoryStore {
    async fn insert_model(&self, new: NewModel<'_>) -> Result<StoredModel, StoreError> {
        let d = new.draft;
        Ok(self.models(|s| {
            let line = s
                .lines
                .entry(ModelState::line_key(d.kind, &d.machine_type))
                .or_default();
            line.last_version += 1;
            let model = new.stored(line.last_version);
            s.models
                .insert(new.id, (model.clone(), new.payload.to_vec()));
            model
        }))
    }

    async fn list_models(&self, filter: &ModelFilter) -> Result<Vec<StoredModel>, StoreError> {
        let mut models: Vec<StoredModel> = self.models(|s| {
            s.models
                .values()
                .filter(|(m, _)| filter.kind.is_none_or(|k| k == m.kind))
                .filter(|(m, _)| {
                    filter
                        .machine_type
                        .as_ref()
                        .is_none_or(|t| *t == m.machine_type)
                })
                .filter_map(|(m, _)| s.read(m.id))
                .collect()
        });
        models.sort_by(|a, b| {
            (
                a.kind.as_str(),
                &a.machine_type,
                std::cmp::Reverse(a.version),
            )
                .cmp(&(
                    b.kind.as_str(),
                    &b.machine_type,
                    std::cmp::Reverse(b.version),
                ))
        });
        Ok(models)
    }

    async fn model(&self, id: ModelId) -> Result<Option<StoredModel>, StoreError> {
        Ok(self.models(|s| s.read(id)))
    }

    async fn model_payload(&self, id: ModelId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.models(|s| s.models.get(&id).map(|(_, payload)| payload.clone())))
    }

    async fn promote_model(
        &self,
        id: ModelId,
        activator: Activator<'_>,
    ) -> Result<Option<StoredModel>, StoreError> {
        Ok(self.models(|s| {
            let (model, _) = s.models.get(&id)?;
            let key = ModelState::line_key(model.kind, &model.machine_type);
            let current = s.current(&key).map(|a| (a.record.id, a.record.model_id));
            if current.is_some_and(|(_, model)| model == id) {
                return s.read(id);
            }
            s.activate(
                key,
                id,
                ActivationAction::Promote,
                current.map(|(activation, _)| activation),
                activator,
            )
        }))
    }

    async fn rollback_target(
        &self,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<Option<StoredModel>, StoreError> {
        Ok(self.models(|s| {
            let target = s.rollback_target(&ModelState::line_key(kind, machine_type))?;
            s.read(target.record.model_id)
        }))
    }

    async fn roll_back_model(
        &self,
        kind: ModelKind,
        machine_type: &str,
        expected: ModelId,
        activator: Activator<'_>,
    ) -> Result<Option<StoredModel>, StoreError> {
        Ok(self.models(|s| {
            let key = ModelState::line_key(kind, machine_type);
            let target = s.rollback_target(&key)?;
            if target.record.model_id != expected {
                return None;
            }
            let rollback_to = target.rollback_to;
            s.activate(
                key,
                expected,
                ActivationAction::Rollback,
                rollback_to,
                activator,
            )
        }))
    }

    async fn model_activations(
        &self,
        kind: ModelKind,
        machine_type: &str,
        limit: usize,
    ) -> Result<Vec<ModelActivation>, StoreError> {
        Ok(self.models(|s| {
            let mut history: Vec<ModelActivation> = s
                .activations
                .values()
                .map(|a| &a.record)
                .filter(|a| a.kind == kind && a.machine_type == machine_type)
                .cloned()
                .collect();
            history.sort_by_key(|a| std::cmp::Reverse(a.seq));
            history.truncate(limit);
            history
        }))
    }

    async fn active_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let mut active: Vec<StoredModel> = self.models(|s| {
            s.lines
                .keys()
                .filter_map(|key| s.current(key))
                .filter_map(|a| s.read(a.record.model_id))
                .collect()
        });
        active.sort_by(|a, b| {
            (a.kind.as_str(), &a.machine_type).cmp(&(b.kind.as_str(), &b.machine_type))
        });
        Ok(active)
    }
}
