//! teardown's AWS adapters: each service behind one seam ([`services`]), what an
//! AWS error means ([`classify`]), where failures go ([`deadletter`]), where
//! follow-ups and fan-out children go ([`request_queue`]), where decisions are
//! published ([`audit`]), and who the function is ([`identity`]). They speak the
//! core's types; none knows which event a request came in.

pub mod audit;
pub mod classify;
pub mod deadletter;
pub mod identity;
pub mod request_queue;
pub mod services;
pub mod state;
pub mod target_items;

// The core's modules, under the names the adapters use for them.
use teardown_core::{batches, confirm, decode, guard, outcome, request};
