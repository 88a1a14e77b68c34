//! Storage ports of the plant model (A1).

use async_trait::async_trait;

use crate::plant::{Machine, MachineId};

use super::StoreError;

#[async_trait]
pub trait MachineStore: Send + Sync {
    /// `Conflict { constraint: "machine_id" }` when the id is taken.
    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError>;
    async fn machine(&self, id: &MachineId) -> Result<Option<Machine>, StoreError>;
    /// All machines, ordered by id.
    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError>;
    /// Replaces the stored machine with the same id; `false` if there is none.
    async fn update_machine(&self, machine: &Machine) -> Result<bool, StoreError>;
    /// Deletes the machine (its readings stay until retention removes them); `false` if none.
    async fn delete_machine(&self, id: &MachineId) -> Result<bool, StoreError>;
}
