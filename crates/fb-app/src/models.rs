//! The model registry (issue #6): trainers register models, admins promote a version to active
//! and roll back, and every node keeps the active model of each kind and machine type loaded in
//! memory for the predictors.
//!
//! The registry does not know how to read a model: the caller supplies a [`ModelLoader`] that
//! turns a stored payload into whatever its predictor runs ([`crate::prediction::PredictLoader`]
//! reads fb-predict's models), so the registry itself reads no model format. A model is made active only after this node has loaded
//! it: promoting a model whose format the loader does not read, or whose payload it refuses, or
//! whose payload no longer matches its SHA-256, fails and leaves the active model as it was.
//!
//! The cache: a promotion or rollback through this service swaps this node's model at once.
//! Other nodes (and the command line, which is another process) change the store only; each
//! node's server calls [`Registry::reload`] every few seconds, one cheap query of the active
//! models' metadata, and loads what changed. A model that fails to load there keeps the
//! previous one in place, logged and counted (`fb_model_reloads_total{outcome="failed"}`), and
//! is not tried again (payloads never change). Promotions, rollbacks and reloads on one node
//! take turns, so its cache follows the store's order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use fb_core::Clock;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal};
use fb_core::model::{
    self, ActivationAction, ModelActivation, ModelDraft, ModelId, ModelKind, StoredModel,
};
use fb_core::plant::validate_machine_type;
use fb_core::ports::{Activator, ModelFilter, ModelStore, NewModel, StoreError};

use crate::auth::describe_fields;
use crate::scope::{OutOfScope, require_all_sites};

/// How many activations [`Registry::activations`] returns at most.
pub const HISTORY_MAX: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("no such model")]
    NotFound,
    #[error("this server cannot read models of format {format:?}; it reads {}", readable_list(.readable))]
    FormatUnsupported {
        format: String,
        readable: Vec<String>,
    },
    #[error("the model's payload cannot be loaded: {0}")]
    PayloadInvalid(String),
    #[error("no model of this kind and machine type was active before the current one")]
    NoPreviousModel,
    #[error("the active model changed meanwhile; look again and retry")]
    ActivationConflict,
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn readable_list(formats: &[String]) -> String {
    if formats.is_empty() {
        "no model format".to_owned()
    } else {
        formats.join(", ")
    }
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Validation(_) => Code::invalid_field,
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::NotFound => Code::model_not_found,
            Error::FormatUnsupported { .. } => Code::model_format_unsupported,
            Error::PayloadInvalid(_) => Code::model_payload_invalid,
            Error::NoPreviousModel => Code::no_previous_model,
            Error::ActivationConflict => Code::model_activation_conflict,
            Error::OutOfScope(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

/// Reads stored models for this node's predictors.
pub trait ModelLoader: Send + Sync + 'static {
    /// What a loaded model is for its user.
    type Loaded: Send + Sync + 'static;

    /// The payload formats this loader reads (`<name>/<version>`); models of other formats are
    /// refused without reading their payload.
    fn formats(&self) -> &[String];

    /// Turns a payload into a usable model, or says why it cannot. Runs on the blocking pool:
    /// a large model takes a while to parse.
    fn load(&self, model: &StoredModel, payload: &[u8]) -> Result<Self::Loaded, String>;
}

/// The active model of a kind and machine type as this node holds it.
#[derive(Debug)]
pub struct LoadedModel<T> {
    /// Its metadata as it was when loaded.
    pub model: StoredModel,
    pub loaded: T,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Models newly loaded because they became active elsewhere.
    pub loaded: usize,
    /// Active models that could not be loaded here; the previous ones stay.
    pub failed: usize,
}

/// The registry's operations, whatever the loaded type: what the API and the command line use.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Stores a model (not active) with the next version of its kind and machine type.
    async fn register(
        &self,
        caller: &Principal,
        draft: ModelDraft,
        payload: Vec<u8>,
    ) -> Result<StoredModel, Error>;

    /// Models (without payloads), by kind, machine type and newest version first.
    async fn list(
        &self,
        caller: &Principal,
        filter: &ModelFilter,
    ) -> Result<Vec<StoredModel>, Error>;

    async fn get(&self, caller: &Principal, id: ModelId) -> Result<StoredModel, Error>;

    /// Who made which model of the line active and when, newest first (at most
    /// [`HISTORY_MAX`]).
    async fn activations(
        &self,
        caller: &Principal,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<Vec<ModelActivation>, Error>;

    /// Makes the model the active one of its kind and machine type, once this node has loaded
    /// it, and swaps it into this node's cache.
    async fn promote(&self, caller: &Principal, id: ModelId) -> Result<StoredModel, Error>;

    /// Makes the model that was active before the current one active again (a second rollback
    /// goes one promotion further back), once this node has loaded it.
    async fn rollback(
        &self,
        caller: &Principal,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<StoredModel, Error>;

    /// Loads the active models that changed in the store since the last look (promoted on
    /// another node or by the command line).
    async fn reload(&self) -> Result<Reloaded, Error>;

    /// The payload formats this node reads.
    fn formats(&self) -> Vec<String>;
}

type Line = (ModelKind, String);

pub struct Service<L: ModelLoader> {
    store: Arc<dyn ModelStore>,
    clock: Arc<dyn Clock>,
    loader: Arc<L>,
    cache: RwLock<HashMap<Line, Arc<LoadedModel<L::Loaded>>>>,
    /// Active models this node's loader refused: payloads never change, so they are not tried
    /// (and logged) again on every reload.
    refused: Mutex<HashSet<ModelId>>,
    /// Promotions, rollbacks and reloads of this node take turns, so that the cache follows the
    /// store's order of activations.
    swaps: tokio::sync::Mutex<()>,
}

impl<L: ModelLoader> Service<L> {
    /// A registry with an empty cache; [`Registry::reload`] fills it.
    pub fn new(store: Arc<dyn ModelStore>, clock: Arc<dyn Clock>, loader: L) -> Self {
        Self {
            store,
            clock,
            loader: Arc::new(loader),
            cache: RwLock::default(),
            refused: Mutex::default(),
            swaps: tokio::sync::Mutex::new(()),
        }
    }

    /// The active model of a kind and machine type, as loaded on this node.
    pub fn active(
        &self,
        kind: ModelKind,
        machine_type: &str,
    ) -> Option<Arc<LoadedModel<L::Loaded>>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(&(kind, machine_type.to_owned())).cloned()
    }

    fn cached_id(&self, line: &Line) -> Option<ModelId> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(line).map(|m| m.model.id)
    }

    fn install(&self, model: StoredModel, loaded: L::Loaded) {
        metrics::gauge!(
            "fb_model_active_version",
            "kind" => model.kind.as_str(),
            "machine_type" => model.machine_type.clone()
        )
        .set(f64::from(model.version));
        let line = (model.kind, model.machine_type.clone());
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(line, Arc::new(LoadedModel { model, loaded }));
    }

    /// Reads and loads the model's payload, checking its format and its hash first.
    async fn load(&self, model: &StoredModel) -> Result<L::Loaded, Error> {
        if !self.loader.formats().contains(&model.format) {
            return Err(Error::FormatUnsupported {
                format: model.format.clone(),
                readable: self.loader.formats().to_vec(),
            });
        }
        let payload = self
            .store
            .model_payload(model.id)
            .await?
            .ok_or(Error::NotFound)?;
        if sha256_hex(&payload) != model.payload_sha256 {
            return Err(Error::PayloadInvalid(
                "the stored payload does not match its SHA-256".to_owned(),
            ));
        }
        let (loader, stored) = (self.loader.clone(), model.clone());
        tokio::task::spawn_blocking(move || loader.load(&stored, &payload))
            .await
            .map_err(|e| Error::PayloadInvalid(format!("the loader failed: {e}")))?
            .map_err(Error::PayloadInvalid)
    }

    /// Swaps the model just made active into the cache, and says so.
    fn activated(
        &self,
        model: StoredModel,
        loaded: L::Loaded,
        action: ActivationAction,
        by: &str,
    ) -> StoredModel {
        tracing::info!(
            model_id = %model.id,
            kind = %model.kind,
            machine_type = %model.machine_type,
            version = model.version,
            action = action.as_str(),
            by = %by,
            "Model made active."
        );
        self.install(model.clone(), loaded);
        model
    }

    fn activator<'a>(&self, caller: &'a str) -> Activator<'a> {
        Activator {
            by: caller,
            at: self.clock.now(),
        }
    }
}

#[async_trait]
impl<L: ModelLoader> Registry for Service<L> {
    async fn register(
        &self,
        caller: &Principal,
        draft: ModelDraft,
        payload: Vec<u8>,
    ) -> Result<StoredModel, Error> {
        require_manage(caller)?;
        let draft = ModelDraft {
            machine_type: draft.machine_type.trim().to_owned(),
            ..draft
        };
        let problems = model::validate_draft(&draft, payload.len());
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let created_by = caller.describe();
        let payload_sha256 = sha256_hex(&payload);
        let stored = self
            .store
            .insert_model(NewModel {
                id: ModelId(Uuid::now_v7()),
                draft: &draft,
                created_at: self.clock.now(),
                created_by: &created_by,
                payload: &payload,
                payload_sha256: &payload_sha256,
            })
            .await?;
        tracing::info!(
            model_id = %stored.id,
            kind = %stored.kind,
            machine_type = %stored.machine_type,
            version = stored.version,
            bytes = stored.payload_bytes,
            "Model registered."
        );
        Ok(stored)
    }

    async fn list(
        &self,
        caller: &Principal,
        filter: &ModelFilter,
    ) -> Result<Vec<StoredModel>, Error> {
        require_read(caller)?;
        Ok(self.store.list_models(filter).await?)
    }

    async fn get(&self, caller: &Principal, id: ModelId) -> Result<StoredModel, Error> {
        require_read(caller)?;
        self.store.model(id).await?.ok_or(Error::NotFound)
    }

    async fn activations(
        &self,
        caller: &Principal,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<Vec<ModelActivation>, Error> {
        require_read(caller)?;
        let machine_type = checked_machine_type(machine_type)?;
        Ok(self
            .store
            .model_activations(kind, machine_type, HISTORY_MAX)
            .await?)
    }

    async fn promote(&self, caller: &Principal, id: ModelId) -> Result<StoredModel, Error> {
        require_manage(caller)?;
        let _turn = self.swaps.lock().await;
        let model = self.store.model(id).await?.ok_or(Error::NotFound)?;
        let line = (model.kind, model.machine_type.clone());
        if model.active && self.cached_id(&line) == Some(id) {
            return Ok(model);
        }
        let loaded = self.load(&model).await?;
        let by = caller.describe();
        let promoted = self
            .store
            .promote_model(id, self.activator(&by))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(self.activated(promoted, loaded, ActivationAction::Promote, &by))
    }

    async fn rollback(
        &self,
        caller: &Principal,
        kind: ModelKind,
        machine_type: &str,
    ) -> Result<StoredModel, Error> {
        require_manage(caller)?;
        let machine_type = checked_machine_type(machine_type)?;
        let _turn = self.swaps.lock().await;
        let target = self
            .store
            .rollback_target(kind, machine_type)
            .await?
            .ok_or(Error::NoPreviousModel)?;
        let loaded = self.load(&target).await?;
        let by = caller.describe();
        let restored = self
            .store
            .roll_back_model(kind, machine_type, target.id, self.activator(&by))
            .await?
            .ok_or(Error::ActivationConflict)?;
        Ok(self.activated(restored, loaded, ActivationAction::Rollback, &by))
    }

    async fn reload(&self) -> Result<Reloaded, Error> {
        let _turn = self.swaps.lock().await;
        let mut report = Reloaded::default();
        for model in self.store.active_models().await? {
            let line = (model.kind, model.machine_type.clone());
            let refused = || {
                let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                refused.contains(&model.id)
            };
            if self.cached_id(&line) == Some(model.id) || refused() {
                continue;
            }
            match self.load(&model).await {
                Ok(loaded) => {
                    tracing::info!(
                        model_id = %model.id,
                        kind = %model.kind,
                        machine_type = %model.machine_type,
                        version = model.version,
                        "Loaded the model made active elsewhere."
                    );
                    self.install(model, loaded);
                    report.loaded += 1;
                    metrics::counter!("fb_model_reloads_total", "outcome" => "loaded").increment(1);
                }
                Err(e) => {
                    let kept = self.cached_id(&line);
                    tracing::warn!(
                        model_id = %model.id,
                        kind = %model.kind,
                        machine_type = %model.machine_type,
                        version = model.version,
                        kept = ?kept.map(|id| id.to_string()),
                        error = %e,
                        "The active model cannot be loaded on this node; the previous one stays."
                    );
                    if matches!(
                        e,
                        Error::FormatUnsupported { .. } | Error::PayloadInvalid(_)
                    ) {
                        let mut refused =
                            self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                        refused.insert(model.id);
                    }
                    report.failed += 1;
                    metrics::counter!("fb_model_reloads_total", "outcome" => "failed").increment(1);
                }
            }
        }
        Ok(report)
    }

    fn formats(&self) -> Vec<String> {
        self.loader.formats().to_vec()
    }
}

/// Models are metadata of the whole plant, not of a site: every reader of the plant sees them.
fn require_read(caller: &Principal) -> Result<(), Error> {
    crate::auth::require(caller, Permission::PlantRead)
        .map_err(|_| Error::PermissionDenied(Permission::PlantRead))
}

/// Managing models changes what every site's machines are predicted with, so only a caller of
/// all sites may.
fn require_manage(caller: &Principal) -> Result<(), Error> {
    crate::auth::require(caller, Permission::ModelsManage)
        .map_err(|_| Error::PermissionDenied(Permission::ModelsManage))?;
    require_all_sites(caller, "prediction models")?;
    Ok(())
}

fn checked_machine_type(machine_type: &str) -> Result<&str, Error> {
    let problems = validate_machine_type("machine_type", machine_type);
    if problems.is_empty() {
        Ok(machine_type.trim())
    } else {
        Err(Error::Validation(problems))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
