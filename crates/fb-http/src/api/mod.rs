//! Wire types. API boundary: a change here is a change for every client; add fields, never
//! rename or remove them within a version.

pub mod v1;
