//! Size inference in a worker process, with a deadline and a memory cap.
//!
//! tract is a library for well-formed models; on hostile or unusual ones its
//! analysis can read out of bounds (SIGSEGV), abort on a huge allocation, or
//! grow or run without end. None of that can be caught inside the process,
//! so [`infer_in_worker`] runs [`super::infer`] in a child process — the
//! tool's own binary with `--size-worker` ([`WORKER_FLAG`]), or any
//! [`Worker`] command that calls [`serve`] — and keeps control of it:
//!
//! - **Deadline.** The child is killed when the deadline passes (the plan's
//!   time limit less a share for the search: [`sizing_budget`]).
//! - **Memory cap.** The child limits its own address space to
//!   [`MEMORY_CAP`] before reading anything (and writes no core file), so a
//!   runaway allocation aborts the child, not the machine or the caller.
//! - **Fallback, never a dead tool.** When the child crashes (signal, abort,
//!   memory cap, escaped panic), the node to blame is searched for by
//!   bisection on the node list (a prefix of the graph is shown to tract, the
//!   rest hidden; each probe is one more child run under the same deadline),
//!   then sizing is re-run with that node hidden from tract, so that the
//!   file's value_info sizes its outputs and tract still infers what follows
//!   (at most [`MAX_CULPRITS`] nodes). When the child runs out of time, or
//!   no single node is to blame, sizing runs in this process *without
//!   tract*: sizes then come from value_info and the tool's own arithmetic
//!   only, and the assumptions say why. What cannot be sized that way is a
//!   one-line error naming the tensor, its node and what happened to tract.
//!
//! The request and the answer are encoded here only. Request, on the child's
//! stdin: one line of JSON (`protocol`, `dims`, `input_shapes`, `hide`,
//! `model_bytes`), then `model_bytes` bytes of the model as protobuf, with
//! the data of the weights tract gets as typed inputs left out (tract never
//! reads them). Answer, on its stdout: one JSON object with `protocol` and
//! either `sizes` or `error` (a [`SizeError`]), or `refused` when the worker
//! cannot read the request. Both carry [`PROTOCOL`]; a worker of another
//! version is a clear error, never a misread answer.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{json, Value};

use super::{infer_with, SizeError, SizeOptions, SizeSource, Sizes, TensorSize, TractUse};
use crate::onnx::pb;

/// The hidden first argument that makes the `onnx-memsched` binary a sizing
/// worker ([`serve`]) instead of the command line.
pub const WORKER_FLAG: &str = "--size-worker";

/// Version of the request/answer encoding; both sides must agree.
pub const PROTOCOL: u64 = 2;

/// Address-space limit a worker sets on itself: 3 GiB. Sizing the largest
/// corpus model needs far less (see docs/HARDENING-SIZES.md for the
/// measured peaks); the cap only stops runaways.
pub const MEMORY_CAP: u64 = 3 << 30;

/// Most nodes hidden from tract one by one after crashes before tract is
/// given up on for the model.
pub const MAX_CULPRITS: usize = 3;

/// Longest request header line a worker accepts.
const MAX_HEADER: u64 = 64 << 20;

/// Bytes of the worker's stderr kept for messages.
const MAX_STDERR: usize = 64 << 10;

/// How to start a sizing worker process: `program args...`, request on
/// stdin, answer on stdout. The program must end up calling [`serve`] (the
/// `onnx-memsched` binary does for [`WORKER_FLAG`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl Worker {
    /// The running executable with [`WORKER_FLAG`]: right for the
    /// `onnx-memsched` binary only (a program whose `main` does not serve
    /// that flag must name its own worker). `None` if the executable's path
    /// is unknown.
    pub fn current_exe() -> Option<Worker> {
        let program = std::env::current_exe().ok()?;
        Some(Worker { program, args: vec![WORKER_FLAG.into()] })
    }

    fn label(&self) -> String {
        self.program.display().to_string()
    }
}

/// The share of the plan's time limit that sizing may take: four fifths,
/// and at least one second (tract's analysis of a sound model takes well
/// under that; the rest is for the search and the checks).
pub fn sizing_budget(time_limit: Duration) -> Duration {
    (time_limit / 5 * 4).max(Duration::from_secs(1))
}

/// The worker side: limits its own memory ([`MEMORY_CAP`], no core file),
/// reads one request from stdin, sizes it in this process, writes the answer
/// to stdout and returns the exit code: 0 when an answer (sizes or a sizing
/// error) was written, 1 when the request was refused or the answer could not
/// be written.
pub fn serve() -> u8 {
    limit_resources();
    let mut stdin = std::io::stdin().lock();
    let (answer, code) = match read_request(&mut stdin) {
        Ok((model, opts, tract_use)) => (encode_answer(&infer_with(&model, &opts, &tract_use)), 0),
        Err(why) => (json!({ "protocol": PROTOCOL, "refused": why }), 1),
    };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &answer).map_err(std::io::Error::from).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(_) => 1,
    }
}

/// Sets the worker's own limits: address space [`MEMORY_CAP`] (never above
/// the hard limit it already has), no core dumps, and on Linux death with
/// its parent (a worker must not outlive the tool that waits for it).
fn limit_resources() {
    #[cfg(unix)]
    {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        type Resource = libc::__rlimit_resource_t;
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        type Resource = libc::c_int;
        fn lower(resource: Resource, value: u64) {
            let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes one `rlimit` through the pointer, which
            // points to a live, properly aligned local for the whole call.
            if unsafe { libc::getrlimit(resource, &mut old) } != 0 {
                return;
            }
            let cur = (value as libc::rlim_t).min(old.rlim_max);
            let new = libc::rlimit { rlim_cur: cur, rlim_max: old.rlim_max };
            // SAFETY: setrlimit only reads the `rlimit` behind the pointer,
            // a live local; it changes no memory of this process.
            unsafe { libc::setrlimit(resource, &new) };
        }
        lower(libc::RLIMIT_AS, MEMORY_CAP);
        lower(libc::RLIMIT_CORE, 0);
    }
    die_with_parent();
}

#[cfg(target_os = "linux")]
fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value and touches no
    // memory of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong);
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent() {}

// ---------------------------------------------------------------- encoding

fn encode_request(payload_len: usize, opts: &SizeOptions, tract_use: &TractUse) -> Vec<u8> {
    let (hide, off) = match tract_use {
        TractUse::Hiding(h) => (h.iter().map(|(ix, why)| json!([ix, why])).collect::<Vec<_>>(), Value::Null),
        TractUse::Off(why) => (Vec::new(), json!(why)),
    };
    let header = json!({
        "protocol": PROTOCOL,
        "dims": opts.dims.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "input_shapes": opts.input_shapes.iter().map(|(n, s)| json!([n, s])).collect::<Vec<_>>(),
        "unknown_dim": opts.unknown_dim,
        "hide": hide,
        "off": off,
        "model_bytes": payload_len,
    });
    let mut line = header.to_string().into_bytes();
    line.push(b'\n');
    line
}

fn read_request(input: &mut impl BufRead) -> Result<(pb::ModelProto, SizeOptions, TractUse), String> {
    let mut line = Vec::new();
    input.by_ref().take(MAX_HEADER).read_until(b'\n', &mut line).map_err(|e| format!("cannot read the request: {e}"))?;
    let header: Value = serde_json::from_slice(&line).map_err(|e| format!("the request is not JSON: {e}"))?;
    let protocol = header.get("protocol").and_then(Value::as_u64);
    if protocol != Some(PROTOCOL) {
        return Err(format!(
            "the request is of protocol {}, this worker speaks protocol {PROTOCOL}",
            protocol.map_or("(none)".to_string(), |p| p.to_string())
        ));
    }
    let bad = |what: &str| format!("the request has no valid `{what}`");
    let pairs = |key: &str| header.get(key).and_then(Value::as_array).cloned().ok_or_else(|| bad(key));
    let mut opts = SizeOptions::default();
    for d in pairs("dims")? {
        let name = d.get(0).and_then(Value::as_str).ok_or_else(|| bad("dims"))?;
        let value = d.get(1).and_then(Value::as_i64).ok_or_else(|| bad("dims"))?;
        opts.dims.push((name.to_string(), value));
    }
    for s in pairs("input_shapes")? {
        let name = s.get(0).and_then(Value::as_str).ok_or_else(|| bad("input_shapes"))?;
        let shape = s.get(1).and_then(u64_list).ok_or_else(|| bad("input_shapes"))?;
        opts.input_shapes.push((name.to_string(), shape));
    }
    opts.unknown_dim = match header.get("unknown_dim") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| bad("unknown_dim"))?),
    };
    let tract_use = match header.get("off").and_then(Value::as_str) {
        Some(why) => TractUse::Off(why.to_string()),
        None => {
            let mut hide = Vec::new();
            for h in pairs("hide")? {
                let ix = h.get(0).and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok());
                let why = h.get(1).and_then(Value::as_str);
                match (ix, why) {
                    (Some(ix), Some(why)) => hide.push((ix, why.to_string())),
                    _ => return Err(bad("hide")),
                }
            }
            TractUse::Hiding(hide)
        }
    };
    let len = header.get("model_bytes").and_then(Value::as_u64).ok_or_else(|| bad("model_bytes"))?;
    let mut bytes = Vec::new();
    input.by_ref().take(len).read_to_end(&mut bytes).map_err(|e| format!("cannot read the model: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!("the request ends after {} of {len} model bytes", bytes.len()));
    }
    let model = pb::ModelProto::decode(bytes.as_slice()).map_err(|e| format!("the model does not decode: {e}"))?;
    Ok((model, opts, tract_use))
}

fn u64_list(v: &Value) -> Option<Vec<u64>> {
    v.as_array()?.iter().map(Value::as_u64).collect()
}

fn source_name(s: SizeSource) -> &'static str {
    match s {
        SizeSource::Tract => "tract",
        SizeSource::Rule => "rule",
        SizeSource::UnknownDim => "unknown_dim",
        SizeSource::ValueInfo => "value_info",
        SizeSource::Declared => "declared",
        SizeSource::Arithmetic => "arithmetic",
    }
}

fn source_of(name: &str) -> Option<SizeSource> {
    Some(match name {
        "tract" => SizeSource::Tract,
        "rule" => SizeSource::Rule,
        "unknown_dim" => SizeSource::UnknownDim,
        "value_info" => SizeSource::ValueInfo,
        "declared" => SizeSource::Declared,
        "arithmetic" => SizeSource::Arithmetic,
        _ => return None,
    })
}

fn encode_answer(result: &Result<Sizes, SizeError>) -> Value {
    match result {
        Ok(sizes) => {
            let mut names: Vec<&String> = sizes.tensors.keys().collect();
            names.sort_unstable();
            let tensors: Vec<Value> = names
                .into_iter()
                .map(|n| {
                    let t = &sizes.tensors[n];
                    json!([n, t.elem_type, t.shape, t.bytes, source_name(t.source)])
                })
                .collect();
            let unknown_dim = sizes.unknown_dim.as_ref().map(|u| json!([u.value, u.tensors, u.derived]));
            json!({
                "protocol": PROTOCOL,
                "sizes": { "tensors": tensors, "assumptions": sizes.assumptions, "unknown_dim": unknown_dim }
            })
        }
        Err(e) => {
            let error = match e {
                SizeError::NoGraph => json!({ "kind": "no_graph" }),
                SizeError::UnknownInput { name, available } => {
                    json!({ "kind": "unknown_input", "name": name, "available": available })
                }
                SizeError::NegativeDim { name, value } => {
                    json!({ "kind": "negative_dim", "name": name, "value": value })
                }
                SizeError::BadInput { name, reason } => json!({ "kind": "bad_input", "name": name, "reason": reason }),
                SizeError::ConflictingDim { symbol, first, second } => {
                    json!({ "kind": "conflicting_dim", "symbol": symbol, "first": first, "second": second })
                }
                SizeError::Unsized { tensor, node_index, node_name, op_type, reason, advice, more } => json!({
                    "kind": "unsized", "tensor": tensor, "node_index": node_index, "node_name": node_name,
                    "op_type": op_type, "reason": reason, "advice": advice, "more": more,
                }),
                SizeError::Overflow { tensor, node_index, node_name, op_type, shape } => json!({
                    "kind": "overflow", "tensor": tensor, "node_index": node_index, "node_name": node_name,
                    "op_type": op_type, "shape": shape,
                }),
                SizeError::Isolation(text) => json!({ "kind": "isolation", "text": text }),
            };
            json!({ "protocol": PROTOCOL, "error": error })
        }
    }
}

/// Reads an answer; `Err` says why it is not one.
fn decode_answer(bytes: &[u8]) -> Result<Result<Sizes, SizeError>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| "its output is not an answer".to_string())?;
    let protocol = v.get("protocol").and_then(Value::as_u64);
    if protocol != Some(PROTOCOL) {
        return Err(format!(
            "it answers in protocol {}, this tool speaks protocol {PROTOCOL}",
            protocol.map_or("(none)".to_string(), |p| p.to_string())
        ));
    }
    if let Some(why) = v.get("refused").and_then(Value::as_str) {
        return Err(format!("it refused the request: {why}"));
    }
    let bad = || "its answer is malformed".to_string();
    if let Some(sizes) = v.get("sizes") {
        let mut out = Sizes::default();
        for t in sizes.get("tensors").and_then(Value::as_array).ok_or_else(bad)? {
            let name = t.get(0).and_then(Value::as_str).ok_or_else(bad)?;
            let elem_type = t.get(1).and_then(Value::as_i64).and_then(|e| i32::try_from(e).ok()).ok_or_else(bad)?;
            let shape = t.get(2).and_then(u64_list).ok_or_else(bad)?;
            let bytes = t.get(3).and_then(Value::as_u64).ok_or_else(bad)?;
            let source = t.get(4).and_then(Value::as_str).and_then(source_of).ok_or_else(bad)?;
            out.tensors.insert(name.to_string(), TensorSize { elem_type, shape, bytes, source });
        }
        for a in sizes.get("assumptions").and_then(Value::as_array).ok_or_else(bad)? {
            out.assumptions.push(a.as_str().ok_or_else(bad)?.to_string());
        }
        out.unknown_dim = match sizes.get("unknown_dim") {
            None | Some(Value::Null) => None,
            Some(u) => {
                let value = u.get(0).and_then(Value::as_u64).ok_or_else(bad)?;
                let tensors = u.get(1).and_then(Value::as_array).ok_or_else(bad)?;
                let tensors = tensors
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                let derived = u.get(2).and_then(Value::as_u64).and_then(|d| usize::try_from(d).ok()).ok_or_else(bad)?;
                Some(super::UnknownDimUse { value, tensors, derived })
            }
        };
        return Ok(Ok(out));
    }
    let e = v.get("error").ok_or_else(bad)?;
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(bad);
    let n = |k: &str| e.get(k).and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok()).ok_or_else(bad);
    let error = match e.get("kind").and_then(Value::as_str).ok_or_else(bad)? {
        "no_graph" => SizeError::NoGraph,
        "unknown_input" => SizeError::UnknownInput { name: s("name")?, available: s("available")? },
        "negative_dim" => {
            SizeError::NegativeDim { name: s("name")?, value: e.get("value").and_then(Value::as_i64).ok_or_else(bad)? }
        }
        "bad_input" => SizeError::BadInput { name: s("name")?, reason: s("reason")? },
        "unsized" => SizeError::Unsized {
            tensor: s("tensor")?,
            node_index: n("node_index")?,
            node_name: s("node_name")?,
            op_type: s("op_type")?,
            reason: s("reason")?,
            advice: s("advice")?,
            more: n("more")?,
        },
        "overflow" => SizeError::Overflow {
            tensor: s("tensor")?,
            node_index: n("node_index")?,
            node_name: s("node_name")?,
            op_type: s("op_type")?,
            shape: e.get("shape").and_then(u64_list).ok_or_else(bad)?,
        },
        "conflicting_dim" => {
            SizeError::ConflictingDim { symbol: s("symbol")?, first: s("first")?, second: s("second")? }
        }
        "isolation" => SizeError::Isolation(s("text")?),
        _ => return Err(bad()),
    };
    Ok(Err(error))
}

/// The model as the worker needs it: the data of every weight that tract
/// gets as a typed input (module `prepare`) is left out, so large models
/// cost the pipe nothing.
fn strip(model: &pb::ModelProto) -> pb::ModelProto {
    fn hollow(t: &pb::TensorProto) -> pb::TensorProto {
        pb::TensorProto {
            name: t.name.clone(),
            dims: t.dims.clone(),
            data_type: t.data_type,
            data_location: t.data_location,
            external_data: t.external_data.clone(),
            ..Default::default()
        }
    }
    let Some(g) = model.graph.as_ref() else {
        return model.clone();
    };
    let mut nodes = g.node.clone();
    for node in nodes.iter_mut().filter(|n| super::prepare::is_constant(n)) {
        if let Some(a) = node.attribute.iter_mut().find(|a| a.name() == "value") {
            if let Some(t) = a.t.as_mut().filter(|t| super::prepare::as_typed_input(t)) {
                *t = hollow(t);
            }
        }
    }
    let graph = pb::GraphProto {
        node: nodes,
        name: g.name.clone(),
        initializer: g
            .initializer
            .iter()
            .map(|t| if super::prepare::as_typed_input(t) { hollow(t) } else { t.clone() })
            .collect(),
        sparse_initializer: g.sparse_initializer.clone(),
        input: g.input.clone(),
        output: g.output.clone(),
        value_info: g.value_info.clone(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        graph: Some(graph),
        functions: model.functions.clone(),
        ..Default::default()
    }
}

// ------------------------------------------------------------ parent side

/// What one worker run gave.
enum Outcome {
    /// An answer: sizes or a sizing error.
    Answer(Result<Sizes, SizeError>),
    /// The worker died: what happened.
    Crashed(String),
    /// The deadline passed; the worker was killed.
    TimedOut,
    /// The worker could not be started or spoke nonsense: the message.
    Broken(String),
}

/// Sizes `model` as [`super::infer`] does, but in a `worker` process that is
/// killed at `deadline`, falling back as the module doc says. Returns what
/// [`super::infer`] returns, or [`SizeError::Isolation`] when the worker
/// cannot be started or answers in another protocol.
pub fn infer_in_worker(
    worker: &Worker,
    model: &pb::ModelProto,
    opts: &SizeOptions,
    deadline: Instant,
) -> Result<Sizes, SizeError> {
    let started = Instant::now();
    let payload = strip(model).encode_to_vec();
    let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
    let mut hide: Vec<(usize, String)> = Vec::new();
    let off = loop {
        match run_once(worker, &payload, opts, &TractUse::Hiding(hide.clone()), deadline) {
            Outcome::Answer(result) => return result,
            Outcome::Broken(message) => return Err(SizeError::Isolation(message)),
            Outcome::TimedOut => {
                let secs = deadline.saturating_duration_since(started).as_secs_f64();
                break format!("its analysis did not finish within the {secs:.1} s allowed to sizing and was stopped");
            }
            Outcome::Crashed(what) => {
                if hide.len() < MAX_CULPRITS {
                    if let Some(ix) = culprit(worker, &payload, opts, &hide, nodes, deadline) {
                        hide.push((ix, format!("tract's analysis crashed on it: {what}")));
                        continue;
                    }
                }
                break format!("its analysis crashed: {what}");
            }
        }
    };
    infer_with(model, opts, &TractUse::Off(off))
}

/// Finds the node whose showing to tract makes the worker crash: the
/// smallest prefix of the node list (beyond the nodes already hidden) that
/// crashes ends with it. `None` when the search runs out of time, the
/// worker crashes with every node hidden, or the culprit is already hidden.
fn culprit(
    worker: &Worker,
    payload: &[u8],
    opts: &SizeOptions,
    hidden: &[(usize, String)],
    nodes: usize,
    deadline: Instant,
) -> Option<usize> {
    // Some(true): crashed; Some(false): ran through; None: give up.
    let probe = |k: usize| -> Option<bool> {
        let mut hide = hidden.to_vec();
        hide.extend((k..nodes).filter(|i| !hidden.iter().any(|(h, _)| h == i)).map(|i| (i, "probe".to_string())));
        match run_once(worker, payload, opts, &TractUse::Hiding(hide), deadline) {
            Outcome::Answer(_) => Some(false),
            Outcome::Crashed(_) => Some(true),
            Outcome::TimedOut | Outcome::Broken(_) => None,
        }
    };
    if probe(0)? {
        return None;
    }
    let (mut lo, mut hi) = (0, nodes); // lo runs through, hi crashes
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if probe(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let ix = hi.checked_sub(1)?;
    (!hidden.iter().any(|(h, _)| *h == ix)).then_some(ix)
}

/// Runs the worker once on a request and classifies what happened.
fn run_once(worker: &Worker, payload: &[u8], opts: &SizeOptions, tract_use: &TractUse, deadline: Instant) -> Outcome {
    let mut child = match Command::new(&worker.program)
        .args(&worker.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Broken(format!(
                "cannot start the sizing worker `{}`: {e}; reinstall onnx-memsched",
                worker.label()
            ))
        }
    };
    let header = encode_request(payload.len(), opts, tract_use);
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Outcome::Broken("cannot talk to the sizing worker: its pipes are missing".into());
    };
    let (status, answer, errors) = std::thread::scope(|scope| {
        // A worker that dies early closes its stdin: the write then fails,
        // which is fine (the exit status says what happened).
        scope.spawn(move || {
            let _ = stdin.write_all(&header).and_then(|()| stdin.write_all(payload));
        });
        let out = scope.spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err = scope.spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut stderr).take(MAX_STDERR as u64).read_to_end(&mut kept);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            kept
        });
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => {
                    std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        (status, out.join().unwrap_or_default(), err.join().unwrap_or_default())
    });
    let Some(status) = status else {
        return Outcome::TimedOut;
    };
    let stderr = String::from_utf8_lossy(&errors);
    if !answer.is_empty() {
        return match decode_answer(&answer) {
            Ok(result) => Outcome::Answer(result),
            Err(why) => Outcome::Broken(format!(
                "the sizing worker `{}` is not usable: {why}; it is probably another version of onnx-memsched (reinstall it)",
                worker.label()
            )),
        };
    }
    Outcome::Crashed(describe_death(status, &stderr))
}

/// One phrase for how a worker died, from its exit status and stderr.
fn describe_death(status: std::process::ExitStatus, stderr: &str) -> String {
    let mut what = if stderr.contains("memory allocation of") {
        format!("it ran out of memory (the sizing worker is capped at {} GiB)", MEMORY_CAP >> 30)
    } else if stderr.contains("has overflowed its stack") {
        "it overflowed its stack".to_string()
    } else if let Some(at) = stderr.find("panicked at") {
        let text: String = stderr[at..].lines().take(2).collect::<Vec<_>>().join(" ");
        let text: String = text.chars().take(200).collect();
        format!("it panicked ({text})")
    } else {
        String::new()
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => "SIGILL",
                6 => "SIGABRT",
                7 => "SIGBUS",
                8 => "SIGFPE",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                15 => "SIGTERM",
                _ => "",
            };
            let sig = if name.is_empty() { format!("signal {sig}") } else { format!("signal {sig} ({name})") };
            if what.is_empty() {
                return format!("the sizing worker was killed by {sig}");
            }
            what.push_str(&format!("; the sizing worker was killed by {sig}"));
            return what;
        }
    }
    if what.is_empty() {
        what = match status.code() {
            Some(code) => format!("the sizing worker exited with code {code} without an answer"),
            None => "the sizing worker ended without an answer".to_string(),
        };
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> Sizes {
        let mut s = Sizes::default();
        s.tensors.insert(
            "a".into(),
            TensorSize { elem_type: 1, shape: vec![2, 1 << 40], bytes: 8 << 40, source: SizeSource::Arithmetic },
        );
        s.tensors
            .insert("b".into(), TensorSize { elem_type: 7, shape: vec![], bytes: 8, source: SizeSource::ValueInfo });
        s.tensors.insert("c".into(), TensorSize { elem_type: 1, shape: vec![3], bytes: 12, source: SizeSource::Rule });
        s.tensors
            .insert("d".into(), TensorSize { elem_type: 7, shape: vec![5], bytes: 40, source: SizeSource::UnknownDim });
        s.assumptions.push("symbol `n` unbound".into());
        s.unknown_dim = Some(crate::sizes::UnknownDimUse { value: 5, tensors: vec!["d".into()], derived: 1 });
        s
    }

    #[test]
    fn answers_round_trip() {
        let ok = decode_answer(encode_answer(&Ok(sizes())).to_string().as_bytes()).unwrap().unwrap();
        assert_eq!(ok, sizes());
        let errors = [
            SizeError::NoGraph,
            SizeError::BadInput { name: "x".into(), reason: "why".into() },
            SizeError::Unsized {
                tensor: "t".into(),
                node_index: 3,
                node_name: "n".into(),
                op_type: "If".into(),
                reason: "r".into(),
                advice: "a".into(),
                more: 2,
            },
            SizeError::ConflictingDim { symbol: "s".into(), first: "16 by --dim s=16".into(), second: "8".into() },
            SizeError::Overflow {
                tensor: "y".into(),
                node_index: 0,
                node_name: "e".into(),
                op_type: "Expand".into(),
                shape: vec![1 << 40, 1 << 40],
            },
            SizeError::NegativeDim { name: "b".into(), value: -2 },
            SizeError::Isolation("text".into()),
        ];
        for e in errors {
            // The message is what the user sees: it must survive unchanged.
            let text = e.to_string();
            let back = decode_answer(encode_answer(&Err(e)).to_string().as_bytes()).unwrap().unwrap_err();
            assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn other_protocols_are_refused() {
        let mut v = encode_answer(&Ok(sizes()));
        v["protocol"] = json!(PROTOCOL + 1);
        let err = decode_answer(v.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("protocol"), "{err}");
        assert!(decode_answer(b"hello").is_err());

        let opts = SizeOptions {
            dims: vec![("n".into(), 3)],
            input_shapes: vec![("x".into(), vec![1, 2])],
            unknown_dim: Some(7),
        };
        let model = pb::ModelProto::default().encode_to_vec();
        let mut request = encode_request(model.len(), &opts, &TractUse::Hiding(vec![(4, "why".into())]));
        request.extend(&model);
        let (_, got, tract_use) = read_request(&mut request.as_slice()).unwrap();
        assert_eq!(got, opts);
        assert_eq!(tract_use, TractUse::Hiding(vec![(4, "why".into())]));
        let mut header: Value = serde_json::from_slice(request.split(|&b| b == b'\n').next().unwrap()).unwrap();
        header["protocol"] = json!(0);
        let line = format!("{header}\n");
        let err = read_request(&mut line.as_bytes()).unwrap_err();
        assert!(err.contains("protocol 0"), "{err}");
    }
}
