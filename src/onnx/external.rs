//! External data: weights stored beside the model in other files.
//!
//! A tensor's `external_data` entry `location` is a path relative to the
//! model's folder. The tool never reads weight bytes, but a rewritten model
//! written to another folder must still find them, so [`make_reachable`]
//! copies each data file next to the output. Data files are never opened for
//! writing.
//!
//! Why a copy and not a hard link (which the design first proposed): onnx
//! 1.23's loader and checker refuse any external data file with more than
//! one link ("potential hardlink attack"), and onnxruntime refuses it for
//! weights inside subgraphs. A hard link would break the output *and* the
//! user's original model for those tools. Symbolic links are refused too.

use super::pb;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Every distinct external data `location` in the model, subgraphs included.
pub fn locations(model: &pb::ModelProto) -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Some(graph) = &model.graph {
        collect_graph(graph, &mut out);
    }
    out.into_iter().collect()
}

fn collect_tensor(tensor: &pb::TensorProto, out: &mut BTreeSet<String>) {
    let external = tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
    if external {
        for entry in &tensor.external_data {
            if entry.key() == "location" {
                out.insert(entry.value().to_string());
            }
        }
    }
}

fn collect_graph(graph: &pb::GraphProto, out: &mut BTreeSet<String>) {
    for t in &graph.initializer {
        collect_tensor(t, out);
    }
    for s in &graph.sparse_initializer {
        for t in s.values.iter().chain(s.indices.iter()) {
            collect_tensor(t, out);
        }
    }
    for node in &graph.node {
        for attr in &node.attribute {
            for t in attr.t.iter().chain(&attr.tensors) {
                collect_tensor(t, out);
            }
            for g in attr.g.iter().chain(&attr.graphs) {
                collect_graph(g, out);
            }
        }
    }
}

/// What happened to one data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Copied next to the output.
    Copied(PathBuf),
    /// The output folder already has this very file (same inode) or the
    /// output is in the input's folder.
    AlreadyThere(PathBuf),
    /// A different file of that name is next to the output; left untouched.
    Conflict(PathBuf),
    /// The data file is not next to the input; the output cannot find it either.
    Missing(PathBuf),
    /// The location is absolute or leaves the model's folder; not followed.
    Unsafe(String),
}

impl DataOutcome {
    /// A one-line message for the user, or None when there is nothing to say.
    pub fn message(&self) -> Option<String> {
        match self {
            DataOutcome::Copied(p) => Some(format!(
                "external data: copied {} (onnx refuses hard-linked data files, so it is a copy)",
                p.display()
            )),
            DataOutcome::AlreadyThere(_) => None,
            DataOutcome::Conflict(p) => Some(format!(
                "warning: external data {} already exists and is a different file; left unchanged: check it holds this model's weights",
                p.display()
            )),
            DataOutcome::Missing(p) => Some(format!(
                "warning: external data {} not found; the tool does not need weights, but a runtime will",
                p.display()
            )),
            DataOutcome::Unsafe(l) => Some(format!(
                "warning: external data location `{l}` is absolute or outside the model's folder; not copied"
            )),
        }
    }
}

fn is_safe(location: &str) -> bool {
    let p = Path::new(location);
    !location.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Makes every data file in `locations` reachable from `out_dir` as it is
/// from `in_dir`. Only a failure to copy an existing file is an error.
pub fn make_reachable(locations: &[String], in_dir: &Path, out_dir: &Path) -> std::io::Result<Vec<DataOutcome>> {
    let mut outcomes = Vec::new();
    let same_dir = matches!((fs::canonicalize(in_dir), fs::canonicalize(out_dir)), (Ok(a), Ok(b)) if a == b);
    for location in locations {
        if !is_safe(location) {
            outcomes.push(DataOutcome::Unsafe(location.clone()));
            continue;
        }
        let src = in_dir.join(location);
        let dst = out_dir.join(location);
        if !src.is_file() {
            outcomes.push(DataOutcome::Missing(src));
            continue;
        }
        if same_dir || same_file(&src, &dst) {
            outcomes.push(DataOutcome::AlreadyThere(dst));
            continue;
        }
        if dst.exists() {
            outcomes.push(DataOutcome::Conflict(dst));
            continue;
        }
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        // Copy to a temporary name and rename, so an interrupted copy never
        // leaves a truncated data file under the real name.
        let folder = dst.parent().unwrap_or(out_dir);
        let tmp = tempfile::Builder::new().prefix(".onnx-memsched-data-").tempfile_in(folder)?;
        fs::copy(&src, tmp.path())?;
        tmp.persist(&dst).map_err(|e| e.error)?;
        outcomes.push(DataOutcome::Copied(dst));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_locations_are_refused() {
        assert!(is_safe("w.data") && is_safe("sub/w.data") && is_safe("./w.data"));
        assert!(!is_safe("../w.data") && !is_safe("/etc/passwd") && !is_safe(""));
    }

    #[test]
    fn copies_missing_and_conflicts() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(a.path().join("w.data"), b"weights").unwrap();
        fs::write(a.path().join("x.data"), b"x").unwrap();
        fs::write(b.path().join("x.data"), b"other").unwrap();
        let locs = vec!["w.data".to_string(), "x.data".to_string(), "gone.data".to_string()];
        let out = make_reachable(&locs, a.path(), b.path()).unwrap();
        assert!(matches!(out[0], DataOutcome::Copied(_)));
        assert_eq!(fs::read(b.path().join("w.data")).unwrap(), b"weights");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let links = fs::metadata(a.path().join("w.data")).unwrap().nlink();
            assert_eq!(links, 1, "the original keeps a single link (onnx refuses hard-linked data)");
        }
        assert!(matches!(out[1], DataOutcome::Conflict(_)));
        assert_eq!(fs::read(b.path().join("x.data")).unwrap(), b"other");
        assert!(matches!(out[2], DataOutcome::Missing(_)));
        // Running again finds a file there and leaves it alone.
        let again = make_reachable(&locs[..1], a.path(), b.path()).unwrap();
        assert!(matches!(again[0], DataOutcome::Conflict(_)));
        assert_eq!(fs::read(a.path().join("w.data")).unwrap(), b"weights");
    }
}
