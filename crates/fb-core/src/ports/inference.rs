//! The remote inference port (catalogue B6): a model server outside the process scores feature
//! rows that live prediction computed, within a latency budget. The adapter speaks a wire
//! protocol (KServe v2, an OpenAI-compatible endpoint) through the outbound resilience layer;
//! the caller falls back to its local model on any error.

use async_trait::async_trait;

use crate::model::ModelKind;

/// One batch of feature rows for one remote model.
#[derive(Debug, Clone, Copy)]
pub struct InferenceRequest<'a> {
    /// The model's name on the remote server.
    pub model: &'a str,
    /// What the answer is: a probability in [0, 1] (failure) or a RUL in the model's time unit.
    pub kind: ModelKind,
    /// Feature names, in the order of each row.
    pub features: &'a [String],
    /// Rows one after the other, `features.len()` values each.
    pub values: &'a [f64],
}

impl InferenceRequest<'_> {
    pub fn rows(&self) -> usize {
        self.values.len() / self.features.len().max(1)
    }
}

/// Why the remote gave no usable answer. Never carries a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    /// No answer within the budget.
    #[error("no answer within the latency budget")]
    Timeout,
    /// The circuit breaker is open: the remote failed too often lately and was not asked.
    #[error("the circuit breaker is open")]
    CircuitOpen,
    /// The call failed: connection, HTTP status, or the remote's own error.
    #[error("the call failed: {0}")]
    Failed(String),
    /// An answer that is not one number per row, or numbers that cannot be the kind's.
    #[error("the answer is unusable: {0}")]
    BadAnswer(String),
}

#[async_trait]
pub trait RemoteInference: Send + Sync {
    /// The remote's name in logs and metrics (the outbound target).
    fn target(&self) -> &str;

    /// One value per row, in order.
    async fn infer(&self, request: InferenceRequest<'_>) -> Result<Vec<f64>, InferenceError>;
}
