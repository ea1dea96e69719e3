//! Planning for callers other than the command line (the Python package): a
//! model given as bytes or a path, options under the CLI's names, and what
//! the CLI makes of it: the same messages, the same report (built by
//! [`report::json`], the function behind `--report`) and the same written
//! bytes ([`OnnxFile::with_order`] of the plan's file order).
//!
//! Errors are one line, as the CLI prints them after `onnx-memsched: error: `.

use crate::graph::memory::MemoryOptions;
use crate::onnx::{external, OnnxFile};
use crate::plan::{plan, Plan, PlanOptions, Target};
use crate::report;
use crate::schedule::Scheduler;
use crate::sizes::SizeOptions;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The CLI's options that change the plan, under the CLI's names and with its
/// defaults (`auto`, `all-runtimes`, 60 s, no bindings, no `--unknown-dim`,
/// both memory switches off, 64-byte alignment).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--scheduler`: a name of [`Scheduler::ALL`].
    pub scheduler: String,
    /// `--target`: `all-runtimes`, `file-order` or `ort-default`.
    pub target: String,
    /// `--time-limit` in seconds (finite, >= 0).
    pub time_limit: f64,
    /// `--dim NAME=VALUE`, each VALUE >= 0.
    pub dims: Vec<(String, i64)>,
    /// `--input-shape NAME=DIMS`.
    pub input_shapes: Vec<(String, Vec<u64>)>,
    /// `--inplace`.
    pub inplace: bool,
    /// `--inputs-live-whole-run`.
    pub inputs_live_whole_run: bool,
    /// `--unknown-dim N`.
    pub unknown_dim: Option<u64>,
    /// `--gap PERCENT`: stop searching within this percentage of the lower
    /// bound (`0` asks for a proof); `0 <= gap < 100`.
    pub gap: f64,
    /// `--align BYTES` of the memory plan (>= 1).
    pub alignment: u64,
    /// Where size inference runs (see [`crate::sizes::isolate`]); `None` in
    /// this process.
    pub size_worker: Option<crate::sizes::isolate::Worker>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scheduler: "auto".into(),
            target: Target::default().name().into(),
            time_limit: 60.0,
            dims: Vec::new(),
            input_shapes: Vec::new(),
            inplace: false,
            inputs_live_whole_run: false,
            unknown_dim: None,
            gap: crate::schedule::driver::DEFAULT_GAP * 100.0,
            alignment: crate::arena::DEFAULT_ALIGNMENT,
            size_worker: None,
        }
    }
}

impl Options {
    /// The [`PlanOptions`] the CLI builds from the same flags, or a one-line
    /// message naming the option that is out of range.
    pub fn plan_options(&self) -> Result<PlanOptions, String> {
        let scheduler = Scheduler::from_name(&self.scheduler).ok_or_else(|| {
            let names: Vec<&str> = Scheduler::ALL.iter().map(|(_, name, _)| *name).collect();
            format!("unknown scheduler `{}`; use one of {}", self.scheduler, names.join(", "))
        })?;
        let target = Target::from_name(&self.target)
            .ok_or_else(|| format!("unknown target `{}`; use all-runtimes, file-order or ort-default", self.target))?;
        if !(self.gap >= 0.0 && self.gap < 100.0) {
            return Err(format!("gap must be a percentage >= 0 and < 100, got {}", self.gap));
        }
        if self.alignment == 0 {
            return Err("the alignment must be at least 1 byte".into());
        }
        if !(self.time_limit >= 0.0 && self.time_limit.is_finite()) {
            return Err(format!("time limit must be a number of seconds >= 0, got {}", self.time_limit));
        }
        if let Some((name, value)) = self.dims.iter().find(|(name, value)| name.trim().is_empty() || *value < 0) {
            return Err(format!("dimension `{name}`={value}: give a non-empty name and a value >= 0"));
        }
        Ok(PlanOptions {
            scheduler,
            target,
            memory: MemoryOptions { inputs_live_whole_run: self.inputs_live_whole_run, inplace: self.inplace },
            sizes: SizeOptions {
                dims: self.dims.clone(),
                input_shapes: self.input_shapes.clone(),
                unknown_dim: self.unknown_dim,
            },
            time_limit: Duration::from_secs_f64(self.time_limit).min(crate::plan::MAX_TIME_LIMIT),
            gap: self.gap / 100.0,
            alignment: self.alignment,
            size_worker: self.size_worker.clone(),
        })
    }
}

/// A planned model: the parsed file, its plan, and the warnings the CLI
/// would print on stderr for it.
#[derive(Debug)]
pub struct Planned {
    /// How messages and the report name the model (the path as the CLI shows it).
    pub name: String,
    /// The model as read.
    pub file: OnnxFile,
    /// The checked schedule.
    pub plan: Plan,
    /// Warnings, one line each, without the CLI's `onnx-memsched: warning: ` prefix.
    pub warnings: Vec<String>,
}

impl Planned {
    /// The `--report` JSON of this plan, `output` being `written` (what the
    /// CLI wrote, or `None` as with `--dry-run`).
    pub fn report(&self, written: Option<&str>) -> serde_json::Value {
        report::json(&self.name, &self.plan, written)
    }

    /// The model's bytes with its nodes in the plan's file order: what the
    /// CLI writes.
    pub fn reordered(&self) -> Vec<u8> {
        self.plan.rewrite(&self.file)
    }
}

/// Reads and plans the model at `path` (weights are never read; external
/// data missing next to it gives the CLI's warning). With `cancel`, setting
/// the flag stops the search as if its time were up ([`crate::cancel`]).
pub fn plan_path(path: &Path, opts: &Options, cancel: Option<Arc<AtomicBool>>) -> Result<Planned, String> {
    let name = path.display().to_string();
    let plan_opts = opts.plan_options()?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    plan_parsed(bytes, name, Some(folder), &plan_opts, cancel)
}

/// Plans the model in `bytes`, named `name` in messages and the report. No
/// folder is known, so missing external data is not looked for.
pub fn plan_bytes(
    bytes: Vec<u8>,
    name: &str,
    opts: &Options,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<Planned, String> {
    let plan_opts = opts.plan_options()?;
    plan_parsed(bytes, name.to_string(), None, &plan_opts, cancel)
}

fn plan_parsed(
    bytes: Vec<u8>,
    name: String,
    folder: Option<&Path>,
    opts: &PlanOptions,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<Planned, String> {
    let file = OnnxFile::parse(bytes).map_err(|e| format!("{name}: {e}"))?;
    let mut warnings = Vec::new();
    if let Some(folder) = folder {
        let missing: Vec<String> =
            external::locations(&file.model).into_iter().filter(|loc| !folder.join(loc).is_file()).collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "external data not found next to the model: {} (not needed for scheduling; a runtime will need it)",
                missing.join(", ")
            ));
        }
    }
    let planned = match cancel {
        Some(flag) => crate::cancel::scope(flag, || plan(&file, opts)),
        None => plan(&file, opts),
    };
    let plan = planned.map_err(|e| format!("{name}: {e}"))?;
    Ok(Planned { name, file, plan, warnings })
}
