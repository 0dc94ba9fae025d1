//! Moving bytes between the client and processes: per-channel input queues, the output copy,
//! and the gate that keeps one connection's held data bounded.

pub(crate) mod copy;
pub(crate) mod flow;
pub(crate) mod input;
