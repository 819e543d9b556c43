//! End to end: the built binary under a local Lambda Runtime API, against moto
//! (SQS, WorkSpaces) and HTTP stand-ins for MGN and Service Catalog. One test
//! binary, so the SDK crates it uses are linked once.
//!
//! - `e2e`: requests of every kind, through to the emulator and the dead-letter queue;
//! - `faults`: every fault on every service, and where the message ends.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod cli;
mod e2e;
mod faults;
mod follow_up;
