//! `--out-dir`: each model read once.
//!
//! A batch must check every model's paths (its output, its external data and
//! their copies) before it writes any, so it reads every model before the
//! first run starts. The model read then is the model planned: it is kept
//! ([`Read::Kept`]) and handed to its run, which does not read the file again
//! — the paths checked are those of the bytes planned. Keeping every model
//! of a big batch could take more memory than planning them one at a time,
//! so at most [`KEEP_BYTES`] of files are kept; a model beyond that is
//! remembered by a [`Fingerprint`] only and read again for its run, which
//! then refuses it if the bytes are not those checked (the file changed in
//! between).

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::onnx::OnnxFile;

/// Most bytes of model files a batch keeps from its first reading (512 MiB;
/// a parsed model takes about twice its file's size).
pub const KEEP_BYTES: u64 = 512 << 20;

/// Length and 64-bit hash of a file's bytes: enough to notice that a file
/// changed between two readings (not a defence against an adversary who
/// controls the file, who could change it after the second reading anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut h = std::hash::DefaultHasher::new();
        h.write(bytes);
        Fingerprint { len: bytes.len() as u64, hash: h.finish() }
    }
}

/// What the first reading of a batch model gave.
#[derive(Debug)]
pub enum Read {
    /// The parsed model, for its run.
    Kept(OnnxFile),
    /// The model parsed, but the budget was spent: its run reads it again
    /// and must find these bytes.
    Dropped(Fingerprint),
    /// The run's error message (the file could not be read or parsed).
    Failed(String),
}

/// How many bytes of kept models a batch may still take.
#[derive(Debug)]
pub struct Budget(AtomicU64);

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Budget {
        Budget(AtomicU64::new(bytes))
    }

    /// Keeps `file` if its bytes fit in what is left (and takes them from
    /// the budget), else only its fingerprint. Safe to call from many threads.
    pub fn keep(&self, file: OnnxFile) -> Read {
        let need = file.bytes.len() as u64;
        let took = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(need));
        match took {
            Ok(_) => Read::Kept(file),
            Err(_) => Read::Dropped(Fingerprint::of(&file.bytes)),
        }
    }
}

/// Checks that `bytes`, read again for a run, are those of the first
/// reading; the error says what to do.
pub fn check_same(bytes: &[u8], first: &Fingerprint) -> Result<(), String> {
    if Fingerprint::of(bytes) == *first {
        Ok(())
    } else {
        Err("the file changed while the batch ran (its paths were checked on the version read first); run again".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(nodes: usize) -> OnnxFile {
        use crate::onnx::pb;
        use prost::Message;
        let node = |i: usize| pb::NodeProto {
            op_type: Some("Relu".into()),
            input: vec![format!("t{i}")],
            output: vec![format!("t{}", i + 1)],
            ..Default::default()
        };
        let model = pb::ModelProto {
            graph: Some(pb::GraphProto { node: (0..nodes).map(node).collect(), ..Default::default() }),
            ..Default::default()
        };
        OnnxFile::parse(model.encode_to_vec()).unwrap()
    }

    #[test]
    fn models_are_kept_until_the_budget_is_spent() {
        let (small, big) = (file(1), file(50));
        let (s, b) = (small.bytes.len() as u64, big.bytes.len() as u64);
        let budget = Budget::new(b + s);
        assert!(matches!(budget.keep(file(50)), Read::Kept(_)));
        // What is left fits the small model, not the big one.
        let big_fp = Fingerprint::of(&big.bytes);
        match budget.keep(big) {
            Read::Dropped(fp) => assert_eq!(fp, big_fp),
            other => panic!("{other:?}"),
        }
        assert!(matches!(budget.keep(small), Read::Kept(_)));
        assert!(matches!(budget.keep(file(1)), Read::Dropped(_)), "the budget is spent");
    }

    #[test]
    fn a_changed_file_is_noticed() {
        let f = file(3);
        let fp = Fingerprint::of(&f.bytes);
        assert!(check_same(&f.bytes, &fp).is_ok());
        let mut changed = f.bytes.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(check_same(&changed, &fp).unwrap_err().contains("changed"));
        assert!(check_same(&f.bytes[1..], &fp).is_err());
    }
}
