//! onnx-memsched: reorder the nodes of an ONNX model so that running them in
//! file order needs the least peak activation memory.
//!
//! The pipeline runs one way, each stage owning one representation:
//!
//! ```text
//! bytes ─ onnx::OnnxFile::parse ─► OnnxFile   prost types + byte span of each node record
//!       ─ sizes::infer ─────────► Sizes       bytes of every tensor (tract shape inference)
//!       ─ graph::build ─────────► Graph       ops and tensors with typed ids
//!       ─ schedule ─────────────► order + peak + lower bound   (plan::plan does all of this)
//!       ─ OnnxFile::with_order ─► bytes       node records permuted, all else unchanged
//! ```
//!
//! The command line lives in [`cli`] (the binary `src/main.rs` only calls
//! [`cli::main_with_args`]); it is a thin shell over [`plan::plan`] and
//! [`output`].

pub mod arena;
pub mod api;
pub mod cancel;
pub mod cli;
pub mod graph;
pub mod onnx;
pub mod output;
pub mod plan;
pub mod plot;
#[cfg(feature = "python")]
mod python;
pub mod report;
pub mod schedule;
pub mod sizes;

pub use plan::{plan, Plan, PlanError, PlanOptions};
