//! The native part of the Python package `onnx_memsched` (module
//! `onnx_memsched._native`, built by maturin with the cargo feature `python`).
//! The Python API around it lives in `python/onnx_memsched/`.
//!
//! - `run_cli(argv) -> int`: the command line, in-process ([`cli::main_with_args`],
//!   the function the binary runs), with the GIL released.
//! - `plan(...)`: [`api::plan_path`] / [`api::plan_bytes`] on a thread of its
//!   own while the calling thread waits without the GIL, checking for signals
//!   every 50 ms: on Ctrl-C it sets the plan's cancellation flag
//!   ([`crate::cancel`]) and returns at once with `KeyboardInterrupt`; the
//!   search thread stops at its next deadline check and its result is dropped.
//! - `MemschedError`: what every bad input raises, with the CLI's one-line message.
//!
//! No Rust panic reaches Python: the planning thread catches it and it
//! becomes a `MemschedError` saying it is an internal error.

use crate::sizes::isolate::Worker;
use crate::{api, cli};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

create_exception!(
    onnx_memsched,
    MemschedError,
    PyException,
    "A bad model or option: the message is the CLI's one line, naming the file, node or tensor and what to do."
);

/// Stack of the planning thread: what the binary's main thread gets on Linux.
const PLAN_STACK: usize = 8 << 20;
/// How often the waiting thread looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The sizing worker of this package: a fresh interpreter (`sys.executable`)
/// that imports this module and runs [`size_worker`], so that a crash or an
/// abort inside tract ends that process, never the caller's.
fn worker(py: Python<'_>) -> PyResult<Worker> {
    let executable: PathBuf = py.import("sys")?.getattr("executable")?.extract()?;
    if executable.as_os_str().is_empty() {
        return Err(MemschedError::new_err(
            "cannot start the sizing worker: sys.executable is empty (embedded Python); run the onnx-memsched command instead",
        ));
    }
    Ok(Worker {
        program: executable,
        args: vec!["-c".into(), "import onnx_memsched._native as n; raise SystemExit(n._size_worker())".into()],
    })
}

/// The sizing worker's side (see [`crate::sizes::isolate::serve`]): reads a
/// request on stdin, answers on stdout, returns the exit code. Only for the
/// worker process this package starts.
#[pyfunction]
fn _size_worker(py: Python<'_>) -> u8 {
    py.detach(crate::sizes::isolate::serve)
}

/// Runs the command line with `argv` (program name first) and returns its exit code.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> PyResult<u8> {
    let worker = worker(py)?;
    let code = py.detach(move || cli::main_with_args_and_worker(argv, Some(worker)));
    // The binary's runtime flushes stdout at exit; a Python process does not run that hook.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    Ok(code)
}

/// What a successful plan hands back: the `--report` JSON, the reordered
/// model (when asked for) and the CLI's warnings.
type Outcome = (String, Option<Vec<u8>>, Vec<String>);

/// Plans the model at `path` or in `data` (exactly one), named `name` when
/// given as bytes; returns `(report_json, reordered_bytes_or_None, warnings)`.
#[pyfunction]
#[pyo3(signature = (*, path, data, name, scheduler, target, time_limit, dims, input_shapes, inplace, inputs_live_whole_run, rewrite))]
#[allow(clippy::too_many_arguments)]
fn plan(
    py: Python<'_>,
    path: Option<PathBuf>,
    data: Option<Bound<'_, PyBytes>>,
    name: String,
    scheduler: String,
    target: String,
    time_limit: f64,
    dims: Vec<(String, i64)>,
    input_shapes: Vec<(String, Vec<u64>)>,
    inplace: bool,
    inputs_live_whole_run: bool,
    rewrite: bool,
) -> PyResult<(String, Option<Py<PyBytes>>, Vec<String>)> {
    let opts = api::Options {
        scheduler,
        target,
        time_limit,
        dims,
        input_shapes,
        inplace,
        inputs_live_whole_run,
        size_worker: Some(worker(py)?),
        ..api::Options::default()
    };
    let data = data.map(|b| b.as_bytes().to_vec());
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let (tx, rx) = mpsc::channel::<Result<Outcome, String>>();
    let job = move || {
        let work = || -> Result<Outcome, String> {
            let planned = match (&path, data) {
                (Some(path), None) => api::plan_path(path, &opts, Some(flag))?,
                (None, Some(bytes)) => api::plan_bytes(bytes, &name, &opts, Some(flag))?,
                _ => return Err("internal error, please report it: give exactly one of path and data".into()),
            };
            let report = serde_json::to_string(&planned.report(None)).map_err(|e| e.to_string())?;
            let bytes = rewrite.then(|| planned.reordered());
            Ok((report, bytes, planned.warnings))
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(format!("internal error, please report it: {what}"))
        });
        // The receiver is gone only after Ctrl-C: nobody wants the result then.
        let _ = tx.send(result);
    };
    std::thread::Builder::new()
        .name("onnx-memsched-plan".into())
        .stack_size(PLAN_STACK)
        .spawn(job)
        .map_err(|e| MemschedError::new_err(format!("cannot start the planning thread: {e}")))?;
    let mut rx = rx;
    let result = loop {
        let (back, received) = py.detach(move || {
            let received = rx.recv_timeout(SIGNAL_POLL);
            (rx, received)
        });
        rx = back;
        match received {
            Ok(result) => break result,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    cancel.store(true, Ordering::Relaxed);
                    return Err(interrupt);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                break Err("internal error, please report it: the planning thread ended without a result".into())
            }
        }
    };
    let (report, bytes, warnings) = result.map_err(MemschedError::new_err)?;
    Ok((report, bytes.map(|b| PyBytes::new(py, &b).unbind()), warnings))
}

/// The module `onnx_memsched._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(_size_worker, m)?)?;
    m.add("MemschedError", m.py().get_type::<MemschedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
