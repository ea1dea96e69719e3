//! The memory model: what the peak of a schedule is.
//!
//! Running op `v` allocates its outputs while its inputs are still live, so
//! the memory at `v`'s step is the bytes live before it plus its outputs.
//! After the step, every tensor whose consumers have all run is freed, and so
//! is an output that nothing reads. Graph inputs are live from the start
//! (they count before the first op) until their last consumer; graph outputs
//! stay live to the end. Weights count 0. The peak is the largest memory over
//! all steps, including the start.
//!
//! Two options change the model and are always named in reports:
//! [`MemoryOptions::inputs_live_whole_run`] (the caller owns the input
//! buffers, as in onnxruntime) and [`MemoryOptions::inplace`] (an op marked
//! [`Op::inplace_capable`](super::Op::inplace_capable) writes its single output
//! over an input of the same size that dies at it, as onnxruntime and TFLite
//! do).

use super::{Graph, OpId, TensorId, TensorKind};

/// Switches of the memory model; the default is the model of the design doc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Graph inputs stay live for the whole run instead of being freed after
    /// their last consumer.
    pub inputs_live_whole_run: bool,
    /// An in-place capable op reuses a dying input of its output's size.
    pub inplace: bool,
}

impl MemoryOptions {
    /// Human descriptions of the options that are on, for reports.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.inputs_live_whole_run {
            out.push("graph inputs live for the whole run (--inputs-live-whole-run)".to_string());
        }
        if self.inplace {
            out.push("element-wise and reshape-like ops write in place over a dying input of the same size (--inplace)".to_string());
        }
        out
    }

    /// Whether graph input `t` is freed after its last consumer.
    pub(crate) fn frees(&self, graph: &Graph, t: TensorId) -> bool {
        let tensor = graph.tensor(t);
        !tensor.graph_output && !(self.inputs_live_whole_run && tensor.kind == TensorKind::GraphInput)
    }
}

/// The memory of one schedule, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The largest memory over all steps and the start.
    pub peak: u64,
    /// The step (position in the schedule) where the peak first occurs;
    /// `None` when it is at the start, before any op runs.
    pub peak_step: Option<usize>,
    /// Bytes live before the first op (the graph inputs).
    pub start: u64,
    /// Memory at each step: live bytes before the op plus its new outputs.
    pub steps: Vec<u64>,
}

/// The input an in-place capable op would overwrite at this point of a
/// schedule, given how many consumers of each tensor have yet to run.
fn inplace_reuse(graph: &Graph, opts: &MemoryOptions, v: OpId, remaining: &[u32]) -> Option<TensorId> {
    let op = graph.op(v);
    if !opts.inplace || !op.inplace_capable || op.outputs.len() != 1 {
        return None;
    }
    let out_bytes = graph.tensor(op.outputs[0]).bytes;
    op.inputs.iter().copied().find(|&t| {
        let tensor = graph.tensor(t);
        out_bytes > 0
            && tensor.bytes == out_bytes
            && tensor.kind != TensorKind::Weight
            && remaining[t.index()] == 1
            && opts.frees(graph, t)
    })
}

/// Bytes that `v` can save by running in place, for a lower bound that must
/// hold for every order: the largest input it could overwrite if that input
/// died at it.
pub fn max_inplace_saving(graph: &Graph, opts: &MemoryOptions, v: OpId) -> u64 {
    let op = graph.op(v);
    if !opts.inplace || !op.inplace_capable || op.outputs.len() != 1 {
        return 0;
    }
    let out_bytes = graph.tensor(op.outputs[0]).bytes;
    let reusable = op.inputs.iter().any(|&t| {
        let tensor = graph.tensor(t);
        tensor.bytes == out_bytes && tensor.kind != TensorKind::Weight && opts.frees(graph, t)
    });
    if reusable {
        out_bytes
    } else {
        0
    }
}

/// The memory profile of running the ops in `order`.
///
/// `order` must be a topological order of all ops (see
/// [`check_order`](super::topo::check_order)); the result is meaningless
/// otherwise.
///
/// ```
/// use onnx_memsched::graph::{from_lists, memory::{evaluate, MemoryOptions}, OpId};
/// // input t0 (4 B) -> op0 -> t1 (8 B) -> op1 -> t2 (2 B, graph output)
/// let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2])], &[4, 8, 2], &[2]);
/// let p = evaluate(&g, &[OpId(0), OpId(1)], &MemoryOptions::default());
/// assert_eq!(p.steps, vec![12, 10]);
/// assert_eq!((p.peak, p.peak_step), (12, Some(0)));
/// ```
pub fn evaluate(graph: &Graph, order: &[OpId], opts: &MemoryOptions) -> Profile {
    let mut remaining: Vec<u32> = graph.tensors.iter().map(|t| t.consumers.len() as u32).collect();
    let start = graph.input_bytes();
    let mut live = start;
    // Graph inputs nobody reads are freed at once.
    for (i, t) in graph.tensors.iter().enumerate() {
        if t.kind == TensorKind::GraphInput && t.consumers.is_empty() && opts.frees(graph, TensorId(i as u32)) {
            live -= t.bytes;
        }
    }
    let mut peak = start;
    let mut peak_step = None;
    let mut steps = Vec::with_capacity(order.len());
    for (step, &v) in order.iter().enumerate() {
        let op = graph.op(v);
        let reused = inplace_reuse(graph, opts, v, &remaining).map_or(0, |t| graph.tensor(t).bytes);
        let allocated: u64 = op.outputs.iter().map(|&t| graph.tensor(t).bytes).sum();
        let memory = live + allocated - reused;
        steps.push(memory);
        if memory > peak {
            peak = memory;
            peak_step = Some(step);
        }
        live += allocated;
        for &t in &op.inputs {
            remaining[t.index()] -= 1;
            if remaining[t.index()] == 0 && opts.frees(graph, t) {
                live -= graph.tensor(t).bytes;
            }
        }
        for &t in &op.outputs {
            let tensor = graph.tensor(t);
            if tensor.consumers.is_empty() && !tensor.graph_output {
                live -= tensor.bytes;
            }
        }
    }
    Profile { peak, peak_step, start, steps }
}

/// For each step of `order`, the input its op overwrites in place (see
/// [`MemoryOptions::inplace`]), by the same rule [`evaluate`] applies; all
/// `None` when the option is off.
pub fn inplace_reuses(graph: &Graph, order: &[OpId], opts: &MemoryOptions) -> Vec<Option<TensorId>> {
    let mut remaining: Vec<u32> = graph.tensors.iter().map(|t| t.consumers.len() as u32).collect();
    let mut reuses = Vec::with_capacity(order.len());
    for &v in order {
        reuses.push(inplace_reuse(graph, opts, v, &remaining));
        for &t in &graph.op(v).inputs {
            remaining[t.index()] -= 1;
        }
    }
    reuses
}

/// The tensors live at `step` of `order` (inputs of the op included, its
/// outputs included), for explaining a peak. `None` means the start.
pub fn live_at(graph: &Graph, order: &[OpId], step: Option<usize>, opts: &MemoryOptions) -> Vec<TensorId> {
    let mut remaining: Vec<u32> = graph.tensors.iter().map(|t| t.consumers.len() as u32).collect();
    let mut live = vec![false; graph.tensors.len()];
    for (i, t) in graph.tensors.iter().enumerate() {
        live[i] = t.kind == TensorKind::GraphInput;
    }
    let collect = |live: &[bool]| {
        (0..live.len()).filter(|&i| live[i]).map(|i| TensorId(i as u32)).collect::<Vec<_>>()
    };
    let Some(target) = step else {
        return collect(&live);
    };
    for (i, t) in graph.tensors.iter().enumerate() {
        if t.kind == TensorKind::GraphInput && t.consumers.is_empty() && opts.frees(graph, TensorId(i as u32)) {
            live[i] = false;
        }
    }
    for (s, &v) in order.iter().enumerate() {
        let op = graph.op(v);
        for &t in &op.outputs {
            live[t.index()] = true;
        }
        if s == target {
            return collect(&live);
        }
        for &t in &op.inputs {
            remaining[t.index()] -= 1;
            if remaining[t.index()] == 0 && opts.frees(graph, t) {
                live[t.index()] = false;
            }
        }
        for &t in &op.outputs {
            let tensor = graph.tensor(t);
            if tensor.consumers.is_empty() && !tensor.graph_output {
                live[t.index()] = false;
            }
        }
    }
    collect(&live)
}
