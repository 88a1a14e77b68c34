//! A read-through cache in front of the machines port.
//!
//! Ingest looks up every machine named by every batch; at thousands of batches a second that
//! is most of the store's queries. The cache serves those lookups from memory. Writes go through
//! it and drop the entry, so a change made through this node is seen by the next batch; entries
//! also expire after `ttl`, so a change made by another node (or the command line) is seen
//! within that time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rustc_hash::FxHashMap;

use fb_core::identity::SiteScope;
use fb_core::plant::{Machine, MachineId};
use fb_core::ports::{MachineStore, StoreError};

pub struct CachedMachineStore {
    inner: Arc<dyn MachineStore>,
    ttl: Duration,
    /// id → (when it was read, what the store had: `None` remembers an unknown id).
    entries: Mutex<FxHashMap<MachineId, (Instant, Option<Machine>)>>,
}

impl CachedMachineStore {
    pub fn new(inner: Arc<dyn MachineStore>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::default(),
        }
    }

    fn forget(&self, id: &MachineId) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[async_trait]
impl MachineStore for CachedMachineStore {
    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError> {
        let result = self.inner.insert_machine(machine).await;
        self.forget(&machine.id);
        result
    }

    async fn machine(&self, id: &MachineId) -> Result<Option<Machine>, StoreError> {
        if let Some((read_at, found)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            && read_at.elapsed() < self.ttl
        {
            return Ok(found.clone());
        }
        let found = self.inner.machine(id).await?;
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    async fn list_machines(&self, sites: &SiteScope) -> Result<Vec<Machine>, StoreError> {
        self.inner.list_machines(sites).await
    }

    async fn update_machine(&self, machine: &Machine) -> Result<bool, StoreError> {
        let result = self.inner.update_machine(machine).await;
        self.forget(&machine.id);
        result
    }

    async fn delete_machine(&self, id: &MachineId) -> Result<bool, StoreError> {
        let result = self.inner.delete_machine(id).await;
        self.forget(id);
        result
    }

    /// Health changes every few seconds: the cached machine is updated in place rather than
    /// dropped, so that ingest keeps its lookups in memory.
    async fn set_machine_health(
        &self,
        id: &MachineId,
        health: f64,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let found = self.inner.set_machine_health(id, health, at).await?;
        if let Some((_, Some(machine))) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            machine.health_score = Some(health);
            machine.updated_at = at;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fb_testkit::fakes::MemoryStore;
    use fb_testkit::fixtures;

    #[tokio::test]
    async fn serves_reads_from_memory_and_sees_its_own_writes() {
        let store = Arc::new(MemoryStore::default());
        let cached = CachedMachineStore::new(store.clone(), Duration::from_secs(3600));
        let mut machine = fixtures::machine("m1");
        let id = machine.id.clone();
        assert_eq!(cached.machine(&id).await.unwrap(), None);
        // Behind the cache's back: the remembered miss stands until it expires.
        store.insert_machine(&machine).await.unwrap();
        assert_eq!(cached.machine(&id).await.unwrap(), None);
        cached.delete_machine(&id).await.unwrap();
        cached.insert_machine(&machine).await.unwrap();
        assert_eq!(cached.machine(&id).await.unwrap().as_ref(), Some(&machine));
        machine.name = "renamed".into();
        cached.update_machine(&machine).await.unwrap();
        assert_eq!(cached.machine(&id).await.unwrap().unwrap().name, "renamed");
    }

    #[tokio::test]
    async fn entries_expire() {
        let store = Arc::new(MemoryStore::default());
        let cached = CachedMachineStore::new(store.clone(), Duration::ZERO);
        let machine = fixtures::machine("m1");
        assert_eq!(cached.machine(&machine.id).await.unwrap(), None);
        store.insert_machine(&machine).await.unwrap();
        assert_eq!(cached.machine(&machine.id).await.unwrap(), Some(machine));
    }
}
