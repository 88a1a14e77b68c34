//! A read-through cache in front of the machines port.
//!
//! Ingest looks up every machine named by every batch; at thousands of batches a second that
//! is most of the store's queries. The cache serves those lookups from memory. Writes go through
//! it and drop the entry, so a change made through this node is seen by the next batch; entries
//! also expire after `ttl`, so a change made by another node (or the command line) is seen
//! within that time.
//!
//! Memory is bounded: callers choose the ids they ask for (a viewer's GET, a gateway's batch of
//! made-up machine names), so at most `KNOWN_MAX` machines and `UNKNOWN_MAX` misses are kept;
//! when a map is full, expired entries go first, then arbitrary ones (a cache, not a record).
//! A lookup past the bound still answers, from the store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rustc_hash::FxHashMap;

use fb_core::identity::SiteScope;
use fb_core::plant::{Machine, MachineId};
use fb_core::ports::{MachineStore, StoreError};

/// Machines kept at most: far above any plant's machine count, far below what exhausts memory.
const KNOWN_MAX: usize = 100_000;
/// Unknown ids remembered at most (so that a gateway repeating one pays one query per `ttl`).
const UNKNOWN_MAX: usize = 10_000;

pub struct CachedMachineStore {
    inner: Arc<dyn MachineStore>,
    ttl: Duration,
    /// id → (when it was read, what the store had: `None` remembers an unknown id).
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: FxHashMap<MachineId, (Instant, Option<Machine>)>,
    unknown: usize,
}

impl Entries {
    fn get(&self, id: &MachineId, ttl: Duration) -> Option<Option<Machine>> {
        self.map
            .get(id)
            .filter(|(read_at, _)| read_at.elapsed() < ttl)
            .map(|(_, found)| found.clone())
    }

    fn remove(&mut self, id: &MachineId) {
        if let Some((_, None)) = self.map.remove(id) {
            self.unknown -= 1;
        }
    }

    fn insert(&mut self, id: MachineId, found: Option<Machine>, ttl: Duration) {
        self.remove(&id);
        let (known, unknown) = (self.map.len() - self.unknown, self.unknown);
        let full = match found {
            Some(_) => known >= KNOWN_MAX,
            None => unknown >= UNKNOWN_MAX,
        };
        if full {
            self.map.retain(|_, (read_at, _)| read_at.elapsed() < ttl);
            self.unknown = self.map.values().filter(|(_, m)| m.is_none()).count();
            let still_full = match found {
                Some(_) => self.map.len() - self.unknown >= KNOWN_MAX,
                None => self.unknown >= UNKNOWN_MAX,
            };
            if still_full {
                let victim = self
                    .map
                    .iter()
                    .find(|(_, (_, m))| m.is_some() == found.is_some())
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    self.remove(&victim);
                }
            }
        }
        if found.is_none() {
            self.unknown += 1;
        }
        self.map.insert(id, (Instant::now(), found));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
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

    /// Entries held now (known machines and remembered misses).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        // An id that cannot exist is not looked up, nor remembered.
        if !MachineId::is_valid(&id.0) {
            return Ok(None);
        }
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id, self.ttl);
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self.inner.machine(id).await?;
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), found.clone(), self.ttl);
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
            .map
            .get_mut(id)
        {
            machine.health_score = Some(health);
            machine.updated_at = at;
        }
        Ok(found)
    }

    /// Like health: updated in place, so that ingest keeps its lookups in memory.
    async fn set_machine_prediction(
        &self,
        id: &MachineId,
        failure_probability: Option<f64>,
        rul_hours: Option<f64>,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let found = self
            .inner
            .set_machine_prediction(id, failure_probability, rul_hours, at)
            .await?;
        if let Some((_, Some(machine))) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get_mut(id)
        {
            machine.failure_probability = failure_probability;
            machine.rul_hours = rul_hours;
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

    #[tokio::test]
    async fn misses_are_bounded_and_invalid_ids_never_cached() {
        let store = Arc::new(MemoryStore::default());
        let cached = CachedMachineStore::new(store.clone(), Duration::from_secs(3600));
        store
            .insert_machine(&fixtures::machine("real"))
            .await
            .unwrap();
        assert!(
            cached
                .machine(&MachineId("real".into()))
                .await
                .unwrap()
                .is_some()
        );
        for i in 0..UNKNOWN_MAX + 500 {
            let id = MachineId(format!("made-up-{i}"));
            assert_eq!(cached.machine(&id).await.unwrap(), None);
        }
        assert!(cached.len() <= UNKNOWN_MAX + 1, "{}", cached.len());
        // A flood of misses never pushes the known machine out.
        assert!(
            cached
                .machine(&MachineId("real".into()))
                .await
                .unwrap()
                .is_some()
        );
        let huge = MachineId("x".repeat(10_000));
        assert_eq!(cached.machine(&huge).await.unwrap(), None);
        assert!(!cached.entries.lock().unwrap().map.contains_key(&huge));
    }
}
