//! The machines registry (A1): who may read, edit and create machines, and validation.
//!
//! Viewers read. Operators change what running the plant needs: status, the active flag, sensor
//! metadata (units and limits) and maintenance dates. Admins create, delete and change a
//! machine's identity, type, class and location.

use std::sync::Arc;

use fb_core::Clock;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal};
use fb_core::plant::{Machine, MachineId, MachinePatch, NewMachine, validate_machine};
use fb_core::ports::{MachineStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {}", describe(.0))]
    Validation(Vec<FieldError>),
    #[error("no machine has the id '{0}'")]
    NotFound(String),
    #[error("a machine with the id '{0}' exists already")]
    Exists(String),
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(fields: &[FieldError]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    match names.as_slice() {
        [one] => format!("field '{one}'"),
        many => format!("fields '{}'", many.join("', '")),
    }
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound(_) => Code::machine_not_found,
            Error::Exists(_) => Code::machine_exists,
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            _ => &[],
        }
    }
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(machines: Arc<dyn MachineStore>, clock: Arc<dyn Clock>) -> Self {
        Self { machines, clock }
    }

    pub async fn create(&self, caller: &Principal, new: NewMachine) -> Result<Machine, Error> {
        require(caller, Permission::PlantManage)?;
        let now = self.clock.now();
        let machine = Machine {
            id: MachineId(new.id),
            name: new.name,
            machine_type: new.machine_type,
            machine_class: new.machine_class,
            location: new.location,
            status: new.status,
            active: new.active,
            sensors: new.sensors,
            last_maintenance: new.last_maintenance,
            next_maintenance: new.next_maintenance,
            health_score: None,
            failure_probability: None,
            rul_hours: None,
            created_at: now,
            updated_at: now,
        };
        let problems = validate_machine(&machine);
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        self.machines
            .insert_machine(&machine)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => Error::Exists(machine.id.0.clone()),
                other => other.into(),
            })?;
        tracing::info!(machine_id = %machine.id, "Machine created.");
        Ok(machine)
    }

    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Machine, Error> {
        require(caller, Permission::PlantRead)?;
        self.machines
            .machine(&MachineId(id.to_owned()))
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    pub async fn list(&self, caller: &Principal) -> Result<Vec<Machine>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.machines.list_machines().await?)
    }

    /// Applies a partial update. Operational changes need `readings.write`; anything touching
    /// identity, type, class or location needs `plant.manage`.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        patch: MachinePatch,
    ) -> Result<Machine, Error> {
        let needed = if patch.is_operational() {
            Permission::ReadingsWrite
        } else {
            Permission::PlantManage
        };
        require(caller, needed)?;
        let mut machine = self.get(caller, id).await?;
        patch.apply(&mut machine);
        machine.updated_at = self.clock.now();
        let problems = validate_machine(&machine);
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        if !self.machines.update_machine(&machine).await? {
            return Err(Error::NotFound(id.to_owned()));
        }
        tracing::info!(machine_id = %machine.id, "Machine updated.");
        Ok(machine)
    }

    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<(), Error> {
        require(caller, Permission::PlantManage)?;
        if !self
            .machines
            .delete_machine(&MachineId(id.to_owned()))
            .await?
        {
            return Err(Error::NotFound(id.to_owned()));
        }
        tracing::info!(machine_id = %id, "Machine deleted.");
        Ok(())
    }
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}
