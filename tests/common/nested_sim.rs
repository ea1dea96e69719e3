//! A brute-force simulator of the memory model with control-flow bodies,
//! written from its definition (README, "The memory model"; the `bodies`
//! module doc) and sharing no code with the tool: a graph's peak for a given
//! order, each control-flow node's step holding its bodies' peak (If: the
//! larger branch less its outputs; Loop: one iteration plus its scan
//! outputs; Scan: one iteration), and the least peak over every order.

use std::collections::{HashMap, HashSet};

use onnx_memsched::onnx::pb;

/// Names a graph reads (at any depth) that it does not define.
pub fn free_reads(g: &pb::GraphProto) -> Vec<String> {
    let mut defined: HashSet<String> = g.input.iter().map(|v| v.name().to_string()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name().to_string()));
    let mut reads = Vec::new();
    for n in &g.node {
        reads.extend(n.input.iter().filter(|i| !i.is_empty()).cloned());
        for a in &n.attribute {
            if let Some(b) = &a.g {
                reads.extend(free_reads(b));
            }
        }
        defined.extend(n.output.iter().cloned());
    }
    reads.extend(g.output.iter().map(|o| o.name().to_string()));
    let mut seen = HashSet::new();
    reads.into_iter().filter(|r| !defined.contains(r) && seen.insert(r.clone())).collect()
}

/// One graph as the memory model sees it.
pub struct Sim {
    reads: Vec<Vec<String>>,
    writes: Vec<Vec<String>>,
    extra: Vec<u64>,
    preds: Vec<Vec<usize>>,
    sources: Vec<String>,
    outputs: HashSet<String>,
    bytes: HashMap<String, u64>,
}

impl Sim {
    /// `g` with each control-flow node's extra from its bodies in their
    /// written order; `g`'s declared inputs count, outer values do not.
    pub fn new(g: &pb::GraphProto, sizes: &HashMap<String, u64>) -> Sim {
        let own: HashSet<String> =
            g.input.iter().map(|v| v.name().to_string()).chain(g.node.iter().flat_map(|n| n.output.clone())).collect();
        // Only this graph's own values count here: outer ones count outside.
        let bytes: HashMap<String, u64> =
            sizes.iter().filter(|(k, _)| own.contains(*k)).map(|(k, v)| (k.clone(), *v)).collect();
        let mut s = Sim {
            reads: Vec::new(),
            writes: Vec::new(),
            extra: Vec::new(),
            preds: Vec::new(),
            sources: g.input.iter().map(|v| v.name().to_string()).collect(),
            outputs: g.output.iter().map(|o| o.name().to_string()).collect(),
            bytes,
        };
        let mut producer = HashMap::new();
        for (v, n) in g.node.iter().enumerate() {
            let mut r: Vec<String> = n.input.iter().filter(|i| !i.is_empty()).cloned().collect();
            let mut peaks = Vec::new();
            for a in &n.attribute {
                if let Some(b) = &a.g {
                    r.extend(free_reads(b));
                    let inner = Sim::new(b, sizes);
                    peaks.push(inner.peak(&(0..b.node.len()).collect::<Vec<_>>()));
                }
            }
            let mut seen = HashSet::new();
            r.retain(|t| seen.insert(t.clone()));
            let outs: u64 = n.output.iter().map(|o| s.b(o)).sum();
            let p = peaks.iter().copied().max().unwrap_or(0);
            let extra = match (peaks.is_empty(), n.op_type()) {
                (true, _) => 0,
                (false, "If") => p.saturating_sub(outs),
                (false, "Loop") => p + n.output.iter().skip(n.input.len() - 2).map(|o| s.b(o)).sum::<u64>(),
                _ => p,
            };
            let mut preds: Vec<usize> = r.iter().filter_map(|t| producer.get(t).copied()).collect();
            preds.sort_unstable();
            preds.dedup();
            for o in &n.output {
                producer.insert(o.clone(), v);
            }
            s.reads.push(r);
            s.writes.push(n.output.clone());
            s.extra.push(extra);
            s.preds.push(preds);
        }
        s
    }

    pub fn b(&self, t: &str) -> u64 {
        self.bytes.get(t).copied().unwrap_or(0)
    }

    pub fn peak(&self, order: &[usize]) -> u64 {
        let mut remaining: HashMap<&str, usize> = HashMap::new();
        for r in &self.reads {
            for t in r {
                *remaining.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut live: HashMap<String, u64> = HashMap::new();
        let start: u64 = self.sources.iter().map(|t| self.b(t)).sum();
        for t in &self.sources {
            if remaining.get(t.as_str()).copied().unwrap_or(0) > 0 || self.outputs.contains(t) {
                live.insert(t.clone(), self.b(t));
            }
        }
        let mut peak = start;
        for &v in order {
            let outs: u64 = self.writes[v].iter().map(|t| self.b(t)).sum();
            peak = peak.max(live.values().sum::<u64>() + outs + self.extra[v]);
            for t in &self.writes[v] {
                live.insert(t.clone(), self.b(t));
            }
            for t in &self.reads[v] {
                let r = remaining.get_mut(t.as_str()).unwrap();
                *r -= 1;
                if *r == 0 && !self.outputs.contains(t) {
                    live.remove(t);
                }
            }
            for t in &self.writes[v] {
                if remaining.get(t.as_str()).copied().unwrap_or(0) == 0 && !self.outputs.contains(t) {
                    live.remove(t);
                }
            }
        }
        peak
    }

    /// The least peak over every topological order, by enumeration.
    pub fn optimum(&self) -> u64 {
        fn go(s: &Sim, done: &mut Vec<bool>, order: &mut Vec<usize>, best: &mut u64) {
            if order.len() == done.len() {
                *best = (*best).min(s.peak(order));
                return;
            }
            for v in 0..done.len() {
                if !done[v] && s.preds[v].iter().all(|&p| done[p]) {
                    done[v] = true;
                    order.push(v);
                    go(s, done, order, best);
                    order.pop();
                    done[v] = false;
                }
            }
        }
        let mut best = u64::MAX;
        go(self, &mut vec![false; self.reads.len()], &mut Vec::new(), &mut best);
        best
    }
}
