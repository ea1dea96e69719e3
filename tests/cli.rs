//! End-to-end tests of the `onnx-memsched` binary: good runs, and every kind
//! of bad input with its message, exit code, and no output left behind.

mod common;

use assert_cmd::Command;
use common::onnx_models::{bytes, diamond, float_value, model, node, with_external_weight};
use onnx_memsched::onnx::pb;
use prost::Message;
use std::fs;
use std::path::Path;

fn tool() -> Command {
    Command::cargo_bin("onnx-memsched").expect("binary built")
}

struct Failure {
    stderr: String,
}

/// Runs the tool on `input_bytes` written to a temp file, expecting exit
/// code `code`, no output file and an unchanged input.
fn expect_failure(input_bytes: &[u8], extra: &[&str], code: i32) -> Failure {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    let output = dir.path().join("out.onnx");
    fs::write(&input, input_bytes).unwrap();
    let out = tool().args(extra).arg(&input).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!output.exists(), "a failed run left an output file");
    assert_eq!(fs::read(&input).unwrap(), input_bytes, "a failed run changed the input");
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind: {leftovers:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Failure { stderr }
}

fn one_line_error(f: &Failure) -> &str {
    let line = f.stderr.lines().find(|l| l.contains("error:")).unwrap_or_else(|| panic!("no error line: {}", f.stderr));
    line
}

#[test]
fn input_scheduler_writes_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let output = dir.path().join("o.onnx");
    fs::write(&input, bytes(&diamond())).unwrap();
    tool().args(["--scheduler", "input"]).arg(&input).arg(&output).assert().success();
    assert_eq!(fs::read(&output).unwrap(), fs::read(&input).unwrap());
}

#[test]
fn dfs_reorders_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let output = dir.path().join("o.onnx");
    fs::write(&input, bytes(&diamond())).unwrap();
    tool().args(["--scheduler", "dfs", "-q"]).arg(&input).arg(&output).assert().success();
    let out = fs::read(&output).unwrap();
    assert_eq!(out.len(), fs::read(&input).unwrap().len());
    let m = pb::ModelProto::decode(out.as_slice()).unwrap();
    let names: Vec<&str> = m.graph.as_ref().unwrap().node.iter().map(|n| n.name()).collect();
    // onnxruntime's reverse DFS explores the later branch (b) first.
    assert_eq!(names, ["b", "a", "c", "y"]);
    let mut expect = diamond();
    let mut got = m.clone();
    expect.graph.as_mut().unwrap().node.clear();
    got.graph.as_mut().unwrap().node.clear();
    assert_eq!(got, expect);
}

#[test]
fn same_path_for_input_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    fs::write(&path, bytes(&diamond())).unwrap();
    tool().args(["--scheduler", "dfs", "-q"]).arg(&path).arg(&path).assert().success();
    let m = pb::ModelProto::decode(fs::read(&path).unwrap().as_slice()).unwrap();
    assert_eq!(m.graph.unwrap().node[0].name(), "b");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn stdin_to_stdout() {
    let input = bytes(&diamond());
    let out = tool().args(["--scheduler", "input", "-q", "-", "-"]).write_stdin(input.clone()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, input);
}

#[test]
fn unsorted_file_comes_out_sorted_and_is_reported() {
    let mut m = diamond();
    m.graph.as_mut().unwrap().node.reverse();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let output = dir.path().join("o.onnx");
    fs::write(&input, bytes(&m)).unwrap();
    let out = tool().args(["--scheduler", "input"]).arg(&input).arg(&output).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not topologically sorted"));
    let got = pb::ModelProto::decode(fs::read(&output).unwrap().as_slice()).unwrap();
    let names: Vec<&str> = got.graph.as_ref().unwrap().node.iter().map(|n| n.name()).collect();
    // Stable sort of [y, c, b, a]: b (index 2) is ready before a (index 3).
    assert_eq!(names, ["b", "a", "c", "y"]);
}

#[test]
fn empty_file() {
    let f = expect_failure(b"", &[], 1);
    assert!(one_line_error(&f).contains("in.onnx") && f.stderr.contains("empty"), "{}", f.stderr);
}

#[test]
fn not_a_protobuf() {
    let f = expect_failure(b"\xff\xff\xff\xff this is not a model", &[], 1);
    assert!(one_line_error(&f).contains("in.onnx: not an ONNX model"), "{}", f.stderr);
    let f = expect_failure(b"hello, world\n", &[], 1);
    assert!(one_line_error(&f).contains("in.onnx"), "{}", f.stderr);
}

#[test]
fn truncated_model() {
    let full = bytes(&diamond());
    for cut in [full.len() / 3, full.len() - 1] {
        let f = expect_failure(&full[..cut], &[], 1);
        assert!(one_line_error(&f).contains("in.onnx"), "{}", f.stderr);
    }
}

#[test]
fn model_without_graph() {
    let m = pb::ModelProto { ir_version: Some(8), ..Default::default() };
    let f = expect_failure(&m.encode_to_vec(), &[], 1);
    assert!(one_line_error(&f).contains("has no graph"), "{}", f.stderr);
}

#[test]
fn cycle_names_its_nodes() {
    let m = model(
        vec![node("Add", "first", &["x", "q"], &["p"]), node("Relu", "second", &["p"], &["q"]), node("Relu", "y", &["p"], &["y"])],
        vec![float_value("x", &[1, 4])],
        vec![float_value("y", &[1, 4])],
    );
    let f = expect_failure(&bytes(&m), &["--scheduler", "input"], 1);
    let line = one_line_error(&f);
    assert!(line.contains("cycle") && line.contains("\"first\"") && line.contains("\"second\""), "{line}");
}

#[test]
fn missing_producer_names_tensor_and_node() {
    let m = model(
        vec![node("Add", "adder", &["x", "ghost"], &["y"])],
        vec![float_value("x", &[1, 4])],
        vec![float_value("y", &[1, 4])],
    );
    let f = expect_failure(&bytes(&m), &[], 1);
    let line = one_line_error(&f);
    assert!(line.contains("`ghost`") && line.contains("\"adder\""), "{line}");
}

#[test]
fn two_producers_of_one_tensor() {
    let m = model(
        vec![node("Relu", "one", &["x"], &["y"]), node("Sigmoid", "two", &["x"], &["y"])],
        vec![float_value("x", &[1, 4])],
        vec![float_value("y", &[1, 4])],
    );
    let f = expect_failure(&bytes(&m), &[], 1);
    let line = one_line_error(&f);
    assert!(line.contains("`y`") && line.contains("\"one\"") && line.contains("\"two\""), "{line}");
}

#[test]
fn output_folder_missing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    fs::write(&input, bytes(&diamond())).unwrap();
    let output = dir.path().join("no/such/folder/o.onnx");
    let out = tool().arg(&input).arg(&output).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist") && stderr.contains("no/such/folder"), "{stderr}");
    assert!(!dir.path().join("no").exists());
}

#[test]
fn input_file_missing() {
    let out = tool().args(["/definitely/not/here.onnx", "/tmp/x.onnx"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /definitely/not/here.onnx"));
}

#[test]
fn usage_errors_exit_2() {
    tool().assert().code(2);
    tool().args(["--scheduler", "nonsense", "a.onnx", "b.onnx"]).assert().code(2);
    tool().args(["--dim", "batch", "a.onnx", "b.onnx"]).assert().code(2);
    tool().args(["--input-shape", "x=1xq", "a.onnx", "b.onnx"]).assert().code(2);
}


#[test]
fn missing_external_data_warns_but_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let output = dir.path().join("o.onnx");
    fs::write(&input, bytes(&with_external_weight("m.onnx.data"))).unwrap();
    let out = tool().arg(&input).arg(&output).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: external data not found"));
    assert!(output.exists());
}

#[test]
fn external_data_is_copied_next_to_the_output() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let input = src.path().join("m.onnx");
    let data = src.path().join("m.onnx.data");
    fs::write(&input, bytes(&with_external_weight("m.onnx.data"))).unwrap();
    fs::write(&data, [7u8; 16]).unwrap();
    let output = dst.path().join("o.onnx");
    let out = tool().arg(&input).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("copied"), "{stderr}");
    assert_eq!(fs::read(dst.path().join("m.onnx.data")).unwrap(), [7u8; 16]);
    assert_eq!(fs::read(&data).unwrap(), [7u8; 16], "original data untouched");
}

#[test]
fn report_json_has_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let report = dir.path().join("r.json");
    fs::write(&input, bytes(&diamond())).unwrap();
    tool().args(["--dry-run", "-q", "--report"]).arg(&report).arg(&input).assert().success();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "dry run writes no model");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    for key in ["peak_bytes_before", "peak_bytes_after", "lower_bound_bytes", "optimal", "scheduler", "seconds", "nodes", "assumptions"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["nodes"], 4);
    // x (256 B) + a (256 B) + b (256 B): b's step holds x, a and b; the
    // memory model is checked in detail elsewhere.
    assert_eq!(v["peak_bytes_before"], 768);
}


fn write_model(dir: &Path, name: &str, m: &pb::ModelProto) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes(m)).unwrap();
    path
}

fn report_of(args: &[&str], model: &Path) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    tool().args(args).args(["--dry-run", "-q", "--report"]).arg(&report).arg(model).assert().success();
    serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap()
}

#[test]
fn fork_join_peaks_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_model(dir.path(), "bad.onnx", &common::onnx_models::fork_join(true));
    let r = report_of(&["--scheduler", "dfs"], &bad);
    assert_eq!(r["peak_bytes_before"], 2304);
    assert_eq!(r["peak_bytes_after"], 1284);
}

#[test]
fn check_exits_3_on_a_poor_order_and_0_on_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_model(dir.path(), "bad.onnx", &common::onnx_models::fork_join(true));
    let good = write_model(dir.path(), "good.onnx", &common::onnx_models::fork_join(false));
    let out = tool().args(["--check", "--scheduler", "dfs"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("check failed") && stderr.contains("2,304 B") && stderr.contains("1,284 B"), "{stderr}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "--check writes nothing");
    tool().args(["--check", "--scheduler", "dfs", "-q"]).arg(&good).assert().code(0);
    // A generous tolerance accepts the poor order too (2304 <= 1284 * 1.9).
    tool().args(["--check", "--scheduler", "dfs", "--tolerance", "90", "-q"]).arg(&bad).assert().code(0);
}

#[test]
fn fail_above_names_the_peak_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_model(dir.path(), "bad.onnx", &common::onnx_models::fork_join(true));
    let out_path = dir.path().join("o.onnx");
    let out = tool().args(["--scheduler", "dfs", "--fail-above", "1KiB"]).arg(&bad).arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over budget") && stderr.contains("1,024 B") && stderr.contains("step"), "{stderr}");
    assert!(stderr.contains("`a`") || stderr.contains("`b`"), "names a big live tensor: {stderr}");
    assert!(!out_path.exists());
    tool().args(["--scheduler", "dfs", "--fail-above", "1284", "-q"]).arg(&bad).arg(&out_path).assert().code(0);
    assert!(out_path.exists());
    tool().args(["--fail-above", "12parsecs", "a.onnx", "b.onnx"]).assert().code(2);
}

#[test]
fn plot_is_a_well_formed_svg_with_both_curves() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_model(dir.path(), "bad.onnx", &common::onnx_models::fork_join(true));
    let svg_path = dir.path().join("p.svg");
    tool().args(["--scheduler", "dfs", "--dry-run", "-q", "--plot"]).arg(&svg_path).arg(&bad).assert().success();
    let svg = fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Every opened element is closed: count tags roughly.
    let opened = svg.matches("<text").count();
    assert_eq!(opened, svg.matches("</text>").count());
    assert!(svg.contains("input order (peak 2.25 KiB)") && svg.contains("new order (peak 1.25 KiB)"), "{svg}");
    assert!(svg.contains("bad.onnx"));
}

#[test]
fn out_dir_processes_many_models_and_continues_past_failures() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let good = write_model(dir.path(), "good.onnx", &diamond());
    let other = write_model(dir.path(), "other.onnx", &common::onnx_models::fork_join(true));
    let broken = dir.path().join("broken.onnx");
    fs::write(&broken, b"not a model").unwrap();
    let result = tool().arg("--out-dir").arg(out.path()).arg(&good).arg(&broken).arg(&other).output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(out.path().join("good.onnx").exists() && out.path().join("other.onnx").exists());
    assert!(!out.path().join("broken.onnx").exists());
    assert!(stderr.contains("broken.onnx: not an ONNX model"), "{stderr}");
    assert!(stderr.contains("good.onnx: 4 nodes") && stderr.contains("other.onnx: 5 nodes"), "{stderr}");
    assert!(stderr.contains("3 models: 2 ok, 0 over budget or check, 1 failed"), "{stderr}");
    // All good: exit 0.
    tool().arg("--out-dir").arg(out.path()).arg(&good).arg(&other).assert().code(0);
}

#[test]
fn argument_combinations_are_usage_errors() {
    tool().args(["only-input.onnx"]).assert().code(2);
    tool().args(["--dry-run", "a.onnx", "b.onnx"]).assert().code(2);
    tool().args(["a.onnx", "b.onnx", "c.onnx"]).assert().code(2);
    tool().args(["--out-dir", "/tmp", "--plot", "p.svg", "a.onnx"]).assert().code(2);
}
