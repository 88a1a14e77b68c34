//! Live inference: one [`MachinePredictor`] per machine, fed one reading at a time.
//!
//! Two costs, paid at two rates. [`MachinePredictor::observe`] is on the ingest path: it
//! normalises the reading and writes it into the ring, O(kept sensors × EWMAs), no allocation.
//! [`MachinePredictor::predict`] computes the window features, O(window × kept sensors), and
//! walks every tree once; it runs when the caller wants a fresh answer (after each reading, or
//! on the service's tick), and not again until a new reading arrived. Memory is fixed when the
//! predictor is made ([`MachinePredictor::state_bytes`]). The model is shared (`Arc`); a
//! promoted model with the same feature pipeline takes over the state
//! ([`MachinePredictor::with_model`]), another one needs a new predictor and a replay.

use std::sync::Arc;

use crate::PredictError;
use crate::data::Reading;
use crate::features::FeatureState;
use crate::model::{Model, ModelKind, Prediction};

#[derive(Debug, Clone)]
pub struct MachinePredictor {
    model: Arc<Model>,
    state: FeatureState,
    row: Vec<f64>,
    current: Option<Prediction>,
    /// Readings arrived since `current` was computed.
    stale: bool,
}

impl MachinePredictor {
    pub fn new(model: Arc<Model>) -> Self {
        let state = FeatureState::new(&model.pipeline);
        let row = Vec::with_capacity(model.pipeline.features());
        Self {
            model,
            state,
            row,
            current: None,
            stale: false,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Keeps the readings seen so far and predicts with `model` from now on, if it turns
    /// readings into features the same way (same pipeline); otherwise hands `model` back.
    pub fn with_model(mut self, model: Arc<Model>) -> Result<Self, Arc<Model>> {
        if model.pipeline != self.model.pipeline {
            return Err(model);
        }
        self.model = model;
        self.stale = self.state.count() > 0;
        Ok(self)
    }

    /// Takes one reading (settings and sensors in the order of the model's schema). A refused
    /// reading leaves the state as it was.
    pub fn observe(&mut self, reading: Reading<'_>) -> Result<(), PredictError> {
        self.state
            .push(&self.model.pipeline, reading)
            .map_err(|reason| PredictError::reading("reading", reason))?;
        self.stale = true;
        Ok(())
    }

    /// The prediction after the last reading (computed now if readings arrived since the last
    /// call); None before the first reading.
    pub fn predict(&mut self) -> Option<Prediction> {
        if self.stale {
            self.state.features(&self.model.pipeline, &mut self.row);
            self.current = Some(self.model.predict_features(&self.row));
            self.stale = false;
        }
        self.current
    }

    /// The last prediction computed, without computing one.
    pub fn current(&self) -> Option<Prediction> {
        self.current
    }

    /// The RUL after the last reading, for a RUL model.
    pub fn rul(&mut self) -> Option<f64> {
        match (self.model.kind(), self.predict()) {
            (ModelKind::Rul, Some(p)) => Some(p.value()),
            _ => None,
        }
    }

    /// The failure probability after the last reading, for a failure model.
    pub fn failure_probability(&mut self) -> Option<f64> {
        match (self.model.kind(), self.predict()) {
            (ModelKind::Failure, Some(p)) => Some(p.value()),
            _ => None,
        }
    }

    /// The features of the last prediction, in `model.meta.features` order.
    pub fn features(&self) -> &[f64] {
        &self.row
    }

    /// Memory held per machine (the shared model not counted).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<FeatureState>()
            + self.state.bytes()
            + 8 * self.row.capacity()
    }
}
