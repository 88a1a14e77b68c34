//! A simulated plant for the demo, tests and load generation (A5).
//!
//! Each machine has a load that follows the shift pattern, and sensors driven by it:
//! temperature follows load with a first-order lag, vibration RMS grows with bearing wear,
//! pressure and flow follow load, power follows load over efficiency, and the output rate
//! (units per hour) follows load below the type's ideal rate, slowed and with more scrap while
//! a fault develops (see [`Simulator::step`]). Faults are injected at
//! seeded random times and recorded with their ground truth (machine, kind, start, end), so that
//! detectors can be scored against them. The same seed gives the same plant, readings and faults.

mod machines;
mod physics;

pub use machines::{MachineKind, ideal_rates, plant_machines};
pub use physics::{Fault, FaultKind, PlannedFault, Simulator};
