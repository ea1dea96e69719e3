//! The memory plan: a fixed offset for every activation tensor in one arena,
//! as deployments without a general allocator use it (TFLite Micro, code
//! generators, static planners).
//!
//! The peak the scheduler proves counts live bytes as if an ideal allocator
//! packed them; an arena with fixed offsets can need more, because a freed
//! hole may be too small or in the wrong place for the next tensor. This
//! module turns a schedule into *buffers* with lifetimes (by the memory
//! model of [`crate::graph::memory`]) and places them ([`place`]).
//!
//! Lifetimes, in steps of the schedule (step `k` runs its `k`-th op):
//! - a graph input is live from step 0 through its last consumer's step
//!   (step 0 alone when nothing reads it; to the end when it is a graph
//!   output or under `--inputs-live-whole-run`);
//! - a node output from its producer's step through its last consumer's
//!   step (its producer's step alone when nothing reads it), to the last
//!   step when it is a graph output;
//! - under `--inplace`, an output written over a dying input takes that
//!   input's buffer (same offset, one lifetime spanning both);
//! - weights and tensors of 0 bytes get no buffer.
//!
//! Sizes are rounded up to the alignment, so the arena's lower bound is the
//! most *aligned* bytes live at one step: at least the peak, and equal to it
//! when every size is already a multiple of the alignment.

pub mod order;
pub mod place;

/// A small deterministic PRNG (xorshift64*) for the placement tests, so a
/// failure reproduces from its seed.
#[cfg(test)]
mod test_rng {
    pub(crate) struct Rng64(pub u64);

    impl Rng64 {
        /// Uniform in `0..n` (n > 0).
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }
}

use crate::graph::memory::{inplace_reuses, MemoryOptions};
use crate::graph::{Graph, OpId, TensorId, TensorKind};
use place::{Buffer, Effort, Placement};
use std::time::Instant;

/// The default alignment of tensor offsets and sizes, in bytes (a cache
/// line; TFLite Micro uses 16, most DSP and NPU runtimes 32 or 64).
pub const DEFAULT_ALIGNMENT: u64 = 64;

/// Plans with at most this many buffers are placed by the exact search
/// when the greedy portfolio misses the bound ([`place::exact`]), so their
/// arena is the least for their order unless the deadline cut it short.
pub const EXACT_MAX_BUFFERS: usize = 48;

/// One tensor's place in the arena.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    /// The tensor.
    pub tensor: TensorId,
    /// Where it starts, a multiple of the alignment.
    pub offset: u64,
    /// Its bytes rounded up to the alignment.
    pub size: u64,
    /// First step at which it is live.
    pub first_step: usize,
    /// Last step at which it is live.
    pub last_step: usize,
    /// The input whose buffer it overwrites in place (`--inplace`): the two
    /// share an offset and are both live at this tensor's first step.
    pub inplace_of: Option<TensorId>,
}

/// A memory plan for one schedule: offsets, the arena and its lower bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Offsets and sizes are multiples of this.
    pub alignment: u64,
    /// Bytes of the arena: the largest `offset + size`.
    pub arena_bytes: u64,
    /// No arena for this schedule is smaller: the most aligned bytes live at
    /// one step.
    pub arena_lower_bound_bytes: u64,
    /// The arena TFLite Micro's greedy-by-size planner needs for the same
    /// schedule and alignment (a portfolio member, so never below
    /// `arena_bytes`).
    pub greedy_by_size_bytes: u64,
    /// Which placement method found the offsets.
    pub method: &'static str,
    /// Every activation tensor with a buffer, in tensor-id order.
    pub tensors: Vec<PlannedTensor>,
}

impl MemoryPlan {
    /// Whether the arena is proved the least for this schedule.
    pub fn optimal(&self) -> bool {
        self.arena_bytes <= self.arena_lower_bound_bytes
    }
}

/// Why no plan was made.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// The alignment is 0.
    #[error("the alignment must be at least 1 byte")]
    ZeroAlignment,
    /// A size overflows when rounded up.
    #[error("tensor `{0}` is too large to align")]
    TooLarge(String),
    /// The placement failed its own check: a bug in this tool.
    #[error("internal error, please report it: the memory plan failed its check: {0}")]
    Invalid(String),
}

/// A tensor held by a buffer, with its own lifetime.
struct Member {
    tensor: TensorId,
    first: usize,
    last: usize,
    inplace_of: Option<TensorId>,
}

/// The buffers of `order` under the memory model, each with the tensors it
/// holds (more than one only with in-place reuse).
fn buffers(
    graph: &Graph,
    order: &[OpId],
    memory: &MemoryOptions,
    alignment: u64,
) -> Result<(Vec<Buffer>, Vec<Vec<Member>>), ArenaError> {
    let n = order.len();
    let end = n.saturating_sub(1);
    let mut pos = vec![0usize; graph.ops.len()];
    for (s, &v) in order.iter().enumerate() {
        pos[v.index()] = s;
    }
    let mut buffer_of: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut members: Vec<Vec<Member>> = Vec::new();
    let lifetime = |t: TensorId| -> Option<(usize, usize)> {
        let tensor = graph.tensor(t);
        if tensor.kind == TensorKind::Weight || tensor.bytes == 0 {
            return None;
        }
        let first = match tensor.producer {
            Some(p) => pos[p.index()],
            None => 0,
        };
        let last_read = tensor.consumers.iter().map(|c| pos[c.index()]).max();
        let last = if !memory.frees(graph, t) { end } else { last_read.unwrap_or(first) };
        Some((first, last.max(first)))
    };
    let aligned = |t: TensorId| -> Result<u64, ArenaError> {
        let bytes = graph.tensor(t).bytes;
        bytes
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or_else(|| ArenaError::TooLarge(graph.tensor(t).name.clone()))
    };
    // Graph inputs first, in tensor order; then outputs in schedule order, so
    // an in-place output finds its input's buffer already made.
    for (i, tensor) in graph.tensors.iter().enumerate() {
        let t = TensorId(i as u32);
        if tensor.kind == TensorKind::GraphInput {
            if let Some((first, last)) = lifetime(t) {
                buffer_of[i] = Some(buffers.len());
                buffers.push(Buffer { size: aligned(t)?, first, last });
                members.push(vec![Member { tensor: t, first, last, inplace_of: None }]);
            }
        }
    }
    let reuses = inplace_reuses(graph, order, memory);
    for (s, &v) in order.iter().enumerate() {
        for &t in &graph.op(v).outputs {
            let Some((first, last)) = lifetime(t) else { continue };
            let shared = reuses[s].and_then(|input| Some((input, buffer_of[input.index()]?)));
            match shared {
                Some((input, b)) => {
                    buffers[b].last = buffers[b].last.max(last);
                    buffer_of[t.index()] = Some(b);
                    members[b].push(Member { tensor: t, first, last, inplace_of: Some(input) });
                }
                None => {
                    buffer_of[t.index()] = Some(buffers.len());
                    buffers.push(Buffer { size: aligned(t)?, first, last });
                    members.push(vec![Member { tensor: t, first, last, inplace_of: None }]);
                }
            }
        }
    }
    Ok((buffers, members))
}

/// The memory plan of running `order` (a topological order of all ops):
/// offsets from [`place::plan`] within `deadline`, checked by
/// [`place::validate`] before it is returned.
pub fn plan_memory(
    graph: &Graph,
    order: &[OpId],
    memory: &MemoryOptions,
    alignment: u64,
    deadline: Instant,
) -> Result<MemoryPlan, ArenaError> {
    if alignment == 0 {
        return Err(ArenaError::ZeroAlignment);
    }
    let (buffers, members) = buffers(graph, order, memory, alignment)?;
    let bound = place::lower_bound(&buffers);
    let greedy = place::greedy_by_size(&buffers);
    let best: Placement = place::plan(&buffers, Effort { deadline, exact_max_buffers: EXACT_MAX_BUFFERS });
    let best = if best.arena <= greedy.arena { best } else { greedy.clone() };
    place::validate(&buffers, &best, alignment).map_err(ArenaError::Invalid)?;
    let mut tensors = Vec::new();
    for (b, holders) in members.iter().enumerate() {
        for m in holders {
            tensors.push(PlannedTensor {
                tensor: m.tensor,
                offset: best.offsets[b],
                size: buffers[b].size,
                first_step: m.first,
                last_step: m.last,
                inplace_of: m.inplace_of,
            });
        }
    }
    tensors.sort_by_key(|p| p.tensor);
    Ok(MemoryPlan {
        alignment,
        arena_bytes: best.arena,
        arena_lower_bound_bytes: bound,
        greedy_by_size_bytes: greedy.arena,
        method: best.method,
        tensors,
    })
}

/// The plan as JSON for `--memory-plan`: `alignment`, `arena_bytes`,
/// `arena_lower_bound_bytes`, `greedy_by_size_bytes`, `method` and
/// `tensors` (`name`, `offset`, `size`, `first_step`, `last_step`,
/// `inplace_of`: the input's name or null).
pub fn json(graph: &Graph, plan: &MemoryPlan) -> serde_json::Value {
    let tensors: Vec<serde_json::Value> = plan
        .tensors
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": graph.tensor(p.tensor).name,
                "offset": p.offset,
                "size": p.size,
                "first_step": p.first_step,
                "last_step": p.last_step,
                "inplace_of": p.inplace_of.map(|t| graph.tensor(t).name.as_str()),
                "body": graph.tensor(p.tensor).body,
            })
        })
        .collect();
    serde_json::json!({
        "alignment": plan.alignment,
        "arena_bytes": plan.arena_bytes,
        "arena_lower_bound_bytes": plan.arena_lower_bound_bytes,
        "greedy_by_size_bytes": plan.greedy_by_size_bytes,
        "method": plan.method,
        "tensors": tensors,
    })
}
