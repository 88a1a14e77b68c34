//! The plant model (A1) and sensor readings (A2): machines, their sensors and limits, readings,
//! and the pure rules that decide whether a reading is accepted.

mod batch;
mod machine;
mod reading;

pub use batch::{
    ReadingBatch, Sample, ScoreBatch, ScoreSample, SeriesBatch, SeriesIdx, SeriesName, from_micros,
    to_micros,
};
pub use machine::{
    Location, Machine, MachineClass, MachineId, MachinePatch, MachineStatus, NewMachine, SensorKey,
    SensorKind, SensorSpec, validate_machine, validate_machine_type, validate_site,
};
pub use reading::{
    IngestLimits, Reading, Rejection, TimeWindow, check_reading, from_unix_number, parse_timestamp,
    parse_timestamp_micros,
};
