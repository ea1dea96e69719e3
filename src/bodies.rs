//! Control-flow bodies: the memory inside `If`, `Loop` and `Scan`, counted
//! and scheduled.
//!
//! A body (an If branch, a Loop or Scan body, at any depth) is a graph of its
//! own. Each is made a standalone model (`standalone`): its declared inputs
//! typed from the node's inputs (nothing for If; iteration count, condition
//! and loop-carried values for Loop; states and one slice of each scanned
//! input for Scan), the outer values it reads typed from the enclosing
//! graph's sizes (small initializers copied, so shape computations can read
//! them). It is sized like the top level ([`crate::sizes`]), built into a
//! [`Graph`], its own bodies planned first (recursion), and then scheduled
//! for the same target as the top level with the same machinery
//! (`plan::schedule_for_target`).
//!
//! # The memory model inside a body
//!
//! A body's peak counts its own tensors only: its declared inputs are graph
//! inputs (live from its start until their last reader; for Loop and Scan
//! these are the per-iteration values the runtime feeds it), its outputs stay
//! live to its end, and the outer values it reads count 0 there, because the
//! enclosing step already counts them (they are inputs of the node).
//!
//! While the node runs, the enclosing step holds what is live before it plus
//! the node's outputs plus an extra ([`extra_bytes`]):
//!
//! * **If**: `max(0, P - outputs)`, `P` the larger peak of the two branches
//!   (which branch runs is unknown: the larger is counted, and said), or the
//!   peak of the branch taken when the condition is a constant or computed
//!   from known shapes ([`crate::sizes`] folds it; the other branch is
//!   neither counted nor planned, and that is said too).
//!   onnxruntime writes a branch's outputs straight into the If's outputs, so
//!   the step is `live + max(outputs, P)`.
//! * **Loop**: `P + S`, `P` the peak of one iteration and `S` the bytes of the
//!   Loop's scan outputs: onnxruntime keeps each iteration's scan outputs and
//!   concatenates them when the loop ends, so the pieces and the result
//!   coexist then; the final loop-carried values are among the outputs.
//! * **Scan** (and any other op with a graph attribute): `P`, the peak of one
//!   iteration on top of the node's outputs, which onnxruntime allocates
//!   whole before the first iteration.
//!
//! The extra is added to the enclosing graph as a tensor that the node writes
//! and nothing reads (named after the node, `... (body)`), so that every
//! scheduler, bound and the arena planner see it without knowing about
//! bodies: such a tensor is live at exactly the node's step.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::graph::memory::MemoryOptions;
use crate::graph::{self, topo, Graph, OpId, Tensor, TensorKind};
use crate::onnx::{pb, BodyPath, BodyStep};
use crate::plan::{PlanError, PlanOptions, Target};
use crate::schedule::driver::SolveOptions;
use crate::schedule::runtimes::{self, RuntimePeaks};
use crate::sizes::{self, SizeOptions, Sizes};

/// Initializers up to this size are copied into a body's standalone model
/// (a body's shape computations may read them); larger ones become typed
/// inputs, whose bytes are never read.
const COPY_INITIALIZER_BYTES: usize = 64 * 1024;

/// The plan of one body.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    /// Where the body is (top-level node, attribute, and deeper steps).
    pub path: BodyPath,
    /// How messages name the body: `node #5 (If "cond") then_branch`, with
    /// the enclosing bodies before it for nested ones.
    pub name: String,
    /// The body's graph with its tensor sizes (outer values count 0) and the
    /// extras of its own control-flow nodes for the chosen orders of their bodies.
    pub graph: Graph,
    /// The node order written for the body (its file order).
    pub file_order: Vec<OpId>,
    /// Every runtime's peak of the body as it is in the input file.
    pub before: RuntimePeaks,
    /// Every runtime's peak of the body as written.
    pub after: RuntimePeaks,
    /// The target's peak of the body as it is in the input file.
    pub peak_before: u64,
    /// The target's peak of the body as written.
    pub peak_after: u64,
    /// No order of the body peaks below this (its nested bodies as chosen).
    pub lower_bound: u64,
    /// Whether `peak_after` is proved least (its nested bodies included).
    pub optimal: bool,
    /// What produced the order.
    pub method: String,
    /// Whether the written order differs from the input's.
    pub changed: bool,
}

/// What `plan_bodies` found for one graph and every body beneath it.
#[derive(Debug, Clone, Default)]
pub struct Bodies {
    /// Every body planned, inner bodies before the bodies that hold them.
    pub plans: Vec<BodyPlan>,
    /// The extras of this graph's control-flow nodes, for the input's body
    /// orders and for the written ones.
    pub costs: Vec<Cost>,
    /// Bodies that could not be counted, one sentence each (for the
    /// assumptions: their memory is left out of every figure).
    pub uncounted: Vec<String>,
    /// What was assumed inside bodies (from their sizing).
    pub assumptions: Vec<String>,
    /// Whether some If node, here or beneath, counts the larger of its two
    /// branches because its condition is not known before running.
    pub unknown_branch: bool,
}

/// The extra bytes a control-flow node's step holds while its bodies run,
/// per runtime, for the input's body orders and for the written ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// The control-flow node.
    pub op: OpId,
    /// The name of the tensor that carries the extra in the enclosing graph.
    pub tensor: String,
    /// Extra bytes with the bodies as in the input file.
    pub before: RuntimePeaks,
    /// Extra bytes with the bodies as written.
    pub after: RuntimePeaks,
}

/// Which of a body's runtime figures a runtime pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// File order (code generators).
    FileOrder,
    /// onnxruntime's default order.
    OrtDefault,
    /// onnxruntime PRIORITY_BASED.
    OrtPriority,
}

impl Runtime {
    /// This runtime's figure among `peaks`.
    pub fn pick(self, peaks: &RuntimePeaks) -> u64 {
        match self {
            Runtime::FileOrder => peaks.file_order,
            Runtime::OrtDefault => peaks.ort_default,
            Runtime::OrtPriority => peaks.ort_priority,
        }
    }

    /// The runtime whose figure `target` optimises.
    pub fn of_target(target: Target) -> Runtime {
        match target {
            Target::AllRuntimes | Target::FileOrder => Runtime::FileOrder,
            Target::OrtDefault => Runtime::OrtDefault,
        }
    }
}

/// `graph` with each cost's extra for `runtime` added as a tensor its node
/// writes and nothing reads (live at exactly that step); `after` picks the
/// written bodies' extras, else the input's.
pub fn with_costs(graph: &Graph, costs: &[Cost], runtime: Runtime, after: bool) -> Graph {
    let mut g = graph.clone();
    for cost in costs {
        let bytes = runtime.pick(if after { &cost.after } else { &cost.before });
        let id = graph::TensorId(g.tensors.len() as u32);
        g.tensors.push(Tensor {
            name: cost.tensor.clone(),
            bytes,
            kind: TensorKind::Activation,
            producer: Some(cost.op),
            consumers: Vec::new(),
            graph_output: false,
            body: true,
        });
        g.ops[cost.op.index()].outputs.push(id);
    }
    g
}

/// Every runtime's peak of `file` on `graph` with `costs`, each runtime
/// paying its own bodies' figure ([`runtimes::runtime_peaks`] three times).
pub fn runtime_peaks(
    graph: &Graph,
    costs: &[Cost],
    after: bool,
    file: &[OpId],
    memory: &MemoryOptions,
) -> Option<RuntimePeaks> {
    if costs.is_empty() {
        return runtimes::runtime_peaks(graph, file, memory);
    }
    let at =
        |r: Runtime| runtimes::runtime_peaks(&with_costs(graph, costs, r, after), file, memory).map(|p| r.pick(&p));
    Some(RuntimePeaks {
        file_order: at(Runtime::FileOrder)?,
        ort_default: at(Runtime::OrtDefault)?,
        ort_priority: at(Runtime::OrtPriority)?,
    })
}

/// The extra bytes of a control-flow node's step (see the module doc), from
/// its bodies' peaks: `outputs` is the bytes of the node's outputs and
/// `scan_outputs` those of a Loop's scan outputs.
pub fn extra_bytes(op_type: &str, body_peaks: &[u64], outputs: u64, scan_outputs: u64) -> u64 {
    let p = body_peaks.iter().copied().max().unwrap_or(0);
    match op_type {
        "If" => p.saturating_sub(outputs),
        "Loop" => p.saturating_add(scan_outputs),
        _ => p,
    }
}

/// Options for planning bodies, shared by every level.
pub(crate) struct BodyOptions<'a> {
    /// The plan's options (target, scheduler, memory model, sizes, worker).
    pub plan: &'a PlanOptions,
    /// Bodies stop being planned after this instant.
    pub deadline: Instant,
    /// Bodies not planned yet (each gets an equal share of what is left).
    pub left: std::cell::Cell<usize>,
}

/// How many bodies `graph` holds, at any depth.
pub fn count(graph: &pb::GraphProto) -> usize {
    graph.node.iter().flat_map(|n| n.attribute.iter()).filter_map(|a| a.g.as_ref()).map(|g| 1 + count(g)).sum()
}

/// Plans every body under the graph of `model` (the top-level model or a
/// body's standalone model), whose tensors `sizes` sizes and whose
/// dependency graph is `graph` (ops in `model`'s node order); `prefix` is
/// where that graph is, `records` says which bodies the writer can reorder.
pub(crate) fn plan_bodies(
    model: &pb::ModelProto,
    sizes: &Sizes,
    graph: &Graph,
    prefix: &[BodyStep],
    prefix_name: &str,
    rewritable: &dyn Fn(&[BodyStep]) -> bool,
    opts: &BodyOptions,
) -> Result<Bodies, PlanError> {
    let mut out = Bodies::default();
    let Some(g) = model.graph.as_ref() else { return Ok(out) };
    // An If whose condition is a constant (or computed from shapes) runs one
    // branch only: the other is neither counted nor planned. (Folded once,
    // and only for a graph that has an If.)
    let values = std::cell::OnceCell::new();
    for (index, node) in g.node.iter().enumerate() {
        let mut attrs: Vec<&pb::AttributeProto> = node.attribute.iter().filter(|a| a.g.is_some()).collect();
        if attrs.is_empty() {
            continue;
        }
        let op = OpId(index as u32);
        let node_name = format!("{prefix_name}{}", graph.describe_op(op));
        if node.op_type() == "If" {
            let values = values.get_or_init(|| crate::sizes::folded_values(g, sizes));
            let taken = node.input.first().and_then(|c| values.get(c)).and_then(|v| v.first()).map(|&c| c != 0.0);
            match taken {
                Some(t) => {
                    let branch = if t { "then_branch" } else { "else_branch" };
                    attrs.retain(|a| a.name() == branch);
                    out.assumptions.push(format!(
                        "{node_name}: its condition is always {t} (a constant, or computed from known shapes): only its {branch} is counted"
                    ));
                }
                None => out.unknown_branch = true,
            }
        }
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut counted = true;
        for attr in attrs {
            let Some(body) = attr.g.as_ref() else { continue };
            let mut path = prefix.to_vec();
            path.push(BodyStep { node: index, attribute: attr.name().to_string() });
            let name = format!("{node_name} {}", attr.name());
            match plan_body(model, sizes, node, body, &path, &name, rewritable, opts)? {
                Ok((plan, nested)) => {
                    out.unknown_branch |= nested.unknown_branch;
                    out.assumptions.extend(nested.assumptions);
                    out.uncounted.extend(nested.uncounted);
                    out.plans.extend(nested.plans);
                    before.push(plan.before);
                    after.push(plan.after);
                    out.plans.push(plan);
                }
                Err(why) => {
                    out.uncounted.push(format!("the memory inside {name} is not counted: {why}"));
                    counted = false;
                }
            }
        }
        if !counted && before.is_empty() {
            continue;
        }
        let outputs: u64 = graph.op(op).outputs.iter().map(|&t| graph.tensor(t).bytes).sum();
        let carried = node.input.len().saturating_sub(2);
        let scan_outputs: u64 = if node.op_type() == "Loop" {
            graph
                .op(op)
                .outputs
                .iter()
                .filter(|&&t| {
                    let name = &graph.tensor(t).name;
                    node.output.iter().position(|o| o == name).is_some_and(|i| i >= carried)
                })
                .map(|&t| graph.tensor(t).bytes)
                .sum()
        } else {
            0
        };
        let extra = |peaks: &[RuntimePeaks]| {
            let of = |r: Runtime| {
                let p: Vec<u64> = peaks.iter().map(|x| r.pick(x)).collect();
                extra_bytes(node.op_type(), &p, outputs, scan_outputs)
            };
            RuntimePeaks {
                file_order: of(Runtime::FileOrder),
                ort_default: of(Runtime::OrtDefault),
                ort_priority: of(Runtime::OrtPriority),
            }
        };
        out.costs.push(Cost {
            op,
            tensor: format!(
                "{} (body)",
                if node.name().is_empty() { format!("#{index}") } else { node.name().to_string() }
            ),
            before: extra(&before),
            after: extra(&after),
        });
    }
    Ok(out)
}

type BodyResult = Result<(BodyPlan, Bodies), String>;

/// Plans one body: `Ok(Err(why))` when it cannot be counted (sizing or
/// structure), `Err` only for an internal error of the scheduler.
#[allow(clippy::too_many_arguments)]
fn plan_body(
    model: &pb::ModelProto,
    sizes: &Sizes,
    node: &pb::NodeProto,
    body: &pb::GraphProto,
    path: &[BodyStep],
    name: &str,
    rewritable: &dyn Fn(&[BodyStep]) -> bool,
    opts: &BodyOptions,
) -> Result<BodyResult, PlanError> {
    if crate::cancel::passed(opts.deadline) {
        return Ok(Err("the time limit was reached before it was sized (raise --time-limit)".into()));
    }
    let lookup = |n: &str| sizes.tensors.get(n).map(|t| (t.elem_type, t.shape.clone()));
    let formals = match formals(node, body, &lookup) {
        Ok(f) => f,
        Err(why) => return Ok(Err(why)),
    };
    let sub = match standalone(model, body, &formals, &lookup) {
        Ok(m) => m,
        Err(why) => return Ok(Err(why)),
    };
    let size_opts = SizeOptions {
        dims: opts.plan.sizes.dims.clone(),
        input_shapes: Vec::new(),
        unknown_dim: opts.plan.sizes.unknown_dim,
    };
    let body_sizes = match &opts.plan.size_worker {
        None => sizes::infer(&sub, &size_opts),
        Some(worker) => sizes::isolate::infer_in_worker(worker, &sub, &size_opts, opts.deadline),
    };
    let body_sizes = match body_sizes {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("its tensors cannot be sized ({e})"))),
    };
    let Some(sub_graph) = sub.graph.as_ref() else { return Ok(Err("it has no graph".into())) };
    let mut graph = match graph::build(sub_graph, &|_| 0) {
        Ok(g) => g,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let declared: Vec<&str> = body.input.iter().map(|v| v.name()).collect();
    for tensor in &mut graph.tensors {
        tensor.bytes = match tensor.kind {
            TensorKind::Weight => 0,
            TensorKind::GraphInput if !declared.contains(&tensor.name.as_str()) => 0,
            _ => body_sizes.tensors.get(&tensor.name).map_or(0, |s| s.bytes),
        };
    }
    let input_order = match topo::stable_order(&graph) {
        Ok(o) => o,
        Err(topo::Cycle(_)) => return Ok(Err("its nodes form a cycle".into())),
    };
    let nested = plan_bodies(&sub, &body_sizes, &graph, path, &format!("{name}: "), rewritable, opts)?;
    // (that --unknown-dim sized nothing inside a body is no news)
    let mut assumptions: Vec<String> = body_sizes
        .assumptions
        .iter()
        .filter(|a| !a.ends_with(crate::sizes::UNKNOWN_DIM_NOT_NEEDED))
        .map(|a| format!("{name}: {a}"))
        .collect();
    assumptions.extend(nested.assumptions.iter().cloned());
    let runtime = Runtime::of_target(opts.plan.target);
    let identity: Vec<OpId> = graph.op_ids().collect();
    let keep = !rewritable(path);
    // An equal share of what is left for the bodies not planned yet (this
    // one included), so one hard body cannot starve the others.
    let left = opts.left.get().max(1);
    opts.left.set(left - 1);
    let remaining = opts.deadline.saturating_duration_since(Instant::now()) / left as u32;
    if graph.ops.is_empty() {
        // A branch that only passes values through: nothing to order.
        let start = graph.input_bytes();
        let peaks = RuntimePeaks { file_order: start, ort_default: start, ort_priority: start };
        let plan = BodyPlan {
            path: path.to_vec(),
            name: name.to_string(),
            graph,
            file_order: Vec::new(),
            before: peaks,
            after: peaks,
            peak_before: start,
            peak_after: start,
            lower_bound: start,
            optimal: true,
            method: "empty body".into(),
            changed: false,
        };
        return Ok(Ok((plan, Bodies { assumptions, ..nested })));
    }
    let before = runtime_peaks(&graph, &nested.costs, false, &identity, &opts.plan.memory)
        .ok_or_else(|| PlanError::Internal(format!("{name}: the runtimes' orders do not cover the body")))?;
    let costed = with_costs(&graph, &nested.costs, runtime, true);
    let mut plan_opts = opts.plan.clone();
    if keep {
        plan_opts.scheduler = crate::schedule::Scheduler::Input;
    }
    let solve_opts = SolveOptions {
        memory: opts.plan.memory,
        time_limit: remaining,
        method: plan_opts.scheduler,
        progress: None,
        gap: opts.plan.gap,
    };
    let scheduled = crate::plan::schedule_for_target(&costed, &input_order, &plan_opts, &solve_opts, remaining)?;
    let file_order = if keep { identity.clone() } else { scheduled.file_order };
    let after = runtime_peaks(&graph, &nested.costs, true, &file_order, &opts.plan.memory)
        .ok_or_else(|| PlanError::Internal(format!("{name}: the runtimes' orders do not cover the body")))?;
    let (peak_before, peak_after) = (runtime.pick(&before), runtime.pick(&after));
    let nested_optimal = nested.plans.iter().all(|p| p.optimal) && nested.uncounted.is_empty();
    let method =
        if keep { "kept: the body's records could not be located in the file".to_string() } else { scheduled.method };
    let plan = BodyPlan {
        path: path.to_vec(),
        name: name.to_string(),
        changed: file_order != identity,
        graph: costed,
        file_order,
        before,
        after,
        peak_before,
        peak_after,
        lower_bound: scheduled.lower_bound,
        optimal: nested_optimal && (scheduled.proved || peak_after <= scheduled.lower_bound),
        method,
    };
    Ok(Ok((plan, Bodies { assumptions, ..nested })))
}

type Typed = (i32, Vec<u64>);

/// The types of a body's declared inputs, from the node's inputs (none for
/// an If branch; [`sizes::body_formals`] for Loop and Scan).
fn formals(
    node: &pb::NodeProto,
    body: &pb::GraphProto,
    lookup: &dyn Fn(&str) -> Option<Typed>,
) -> Result<Vec<Typed>, String> {
    let formal = match node.op_type() {
        "If" => Vec::new(),
        _ => sizes::body_formals(node, lookup)?.0,
    };
    if formal.len() != body.input.len() {
        return Err(format!("its body declares {} inputs where {} are fed", body.input.len(), formal.len()));
    }
    Ok(formal)
}

/// `body` as a model of its own (see the module doc): `formals` type its
/// declared inputs; every outer value it reads is a small initializer of
/// `model`'s graph (copied), a `Constant` output of it (made an
/// initializer), or a typed input sized by `lookup`.
pub(crate) fn standalone(
    model: &pb::ModelProto,
    body: &pb::GraphProto,
    formals: &[Typed],
    lookup: &dyn Fn(&str) -> Option<Typed>,
) -> Result<pb::ModelProto, String> {
    let outer = model.graph.as_ref().ok_or("the model has no graph")?;
    let mut sub = body.clone();
    sub.input = body.input.iter().zip(formals).map(|(vi, (e, s))| sizes::typed_value_info(vi.name(), *e, s)).collect();
    let inits: HashMap<&str, &pb::TensorProto> = outer.initializer.iter().map(|t| (t.name(), t)).collect();
    let constants: HashMap<&str, &pb::TensorProto> = outer
        .node
        .iter()
        .filter(|n| graph::build::is_constant(n))
        .filter_map(|n| {
            let value = n.attribute.iter().find(|a| a.name() == "value").and_then(|a| a.t.as_ref())?;
            Some((n.output.first()?.as_str(), value))
        })
        .collect();
    for name in graph::build::outer_reads(body) {
        let small = |t: &pb::TensorProto| {
            t.data_location() != pb::tensor_proto::DataLocation::External
                && t.raw_data.as_ref().map_or(0, |r| r.len()) <= COPY_INITIALIZER_BYTES
        };
        let weight = inits.get(name.as_str()).or_else(|| constants.get(name.as_str())).copied();
        if let Some(t) = weight.filter(|t| small(t)) {
            let mut t = t.clone();
            t.name = Some(name.clone());
            sub.initializer.push(t);
            continue;
        }
        // A large weight is typed by its own dims (its bytes are never read).
        let declared = weight.and_then(|t| {
            let dims = t.dims.iter().map(|&d| u64::try_from(d).ok()).collect::<Option<Vec<u64>>>()?;
            Some((t.data_type(), dims))
        });
        let (elem, shape) =
            lookup(&name).or(declared).ok_or_else(|| format!("the outer value `{name}` it reads has no size"))?;
        sub.input.push(sizes::typed_value_info(&name, elem, &shape));
    }
    Ok(pb::ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        functions: model.functions.clone(),
        graph: Some(sub),
        ..Default::default()
    })
}

/// How long bodies may take: a quarter of what the search has, at least
/// 50 ms, and never past `limit`.
pub(crate) fn budget(search: Duration) -> Duration {
    (search / 4).max(Duration::from_millis(50)).min(search)
}
