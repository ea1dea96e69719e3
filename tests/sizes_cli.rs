//! End-to-end tests of the sizing flags: `--unknown-dim` (report field,
//! assumptions, the refusal that names it) and `--input-shape` binding the
//! symbols of an input (conflicts are a one-line error, nothing written).

mod common;

use assert_cmd::Command;
use common::onnx_models::{bytes, float_value, model, node};
use onnx_memsched::onnx::pb;
use std::fs;

fn tool() -> Command {
    Command::cargo_bin("onnx-memsched").expect("binary built")
}

/// x: FLOAT[3, 4] -> NonZero -> nz: INT64[2, ?] -> Cast(FLOAT) -> y.
fn nonzero_model() -> pb::ModelProto {
    let mut cast = node("Cast", "cast", &["nz"], &["y"]);
    cast.attribute.push(pb::AttributeProto {
        name: Some("to".into()),
        r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
        i: Some(1),
        ..Default::default()
    });
    let mut y = float_value("y", &[2, 1]);
    if let Some(pb::type_proto::Value::TensorType(t)) = y.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    model(vec![node("NonZero", "nonzero", &["x"], &["nz"]), cast], vec![float_value("x", &[3, 4])], vec![y])
}

#[test]
fn data_dependent_size_is_refused_naming_unknown_dim() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nz.onnx");
    let output = dir.path().join("out.onnx");
    fs::write(&input, bytes(&nonzero_model())).unwrap();
    let out = tool().arg(&input).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`nz`") && stderr.contains("--unknown-dim N"), "{stderr}");
    assert!(!output.exists());
}

#[test]
fn unknown_dim_sizes_it_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nz.onnx");
    let report = dir.path().join("r.json");
    fs::write(&input, bytes(&nonzero_model())).unwrap();
    tool().args(["--unknown-dim", "5", "--dry-run", "--report"]).arg(&report).arg(&input).assert().success();
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    // x 3*4*4 = 48 B; nz INT64[2, 5] = 80 B; y FLOAT[2, 5] = 40 B.
    // NonZero runs with x and nz live: 128 B; Cast with nz and y: 120 B.
    assert_eq!(r["peak_bytes_after"], 128, "{r}");
    assert_eq!(r["unknown_dim"]["value"], 5, "{r}");
    assert_eq!(r["unknown_dim"]["tensors"], 1, "{r}");
    assert_eq!(r["unknown_dim"]["first"][0], "nz", "{r}");
    assert_eq!(r["unknown_dim"]["derived"], 1, "y: {r}");
    let assumptions = r["assumptions"].as_array().unwrap();
    assert!(assumptions.iter().any(|a| a.as_str().unwrap().contains("every figure rests on")), "{r}");
    // without the flag the report field is null
    let plain = dir.path().join("plain.onnx");
    fs::write(&plain, bytes(&common::onnx_models::diamond())).unwrap();
    tool().args(["--dry-run", "--report"]).arg(&report).arg(&plain).assert().success();
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r["unknown_dim"].is_null(), "{r}");
}

#[test]
fn input_shape_conflicting_with_dim_is_one_clear_error() {
    let mut m = common::onnx_models::diamond();
    let g = m.graph.as_mut().unwrap();
    if let Some(pb::type_proto::Value::TensorType(t)) = g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape.as_mut().unwrap().dim[1].value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("seq".into()));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    let output = dir.path().join("o.onnx");
    fs::write(&input, bytes(&m)).unwrap();
    let out = tool().args(["--dim", "seq=8", "--input-shape", "x=1x16"]).arg(&input).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("error")).unwrap_or_default();
    assert!(
        line.contains("`seq`") && line.contains("--dim seq=8") && line.contains("--input-shape x=1x16"),
        "{stderr}"
    );
    assert!(!output.exists());
    // agreeing values are fine
    tool().args(["--dim", "seq=16", "--input-shape", "x=1x16", "--dry-run"]).arg(&input).assert().success();
}
