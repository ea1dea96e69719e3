//! Compiles `proto/onnx.proto` (the vendored schema of the newest ONNX
//! release) into Rust types with prost-build.
//!
//! `protoc` comes from the `protoc-bin-vendored` crate so that a fresh
//! machine needs nothing but cargo; a `PROTOC` environment variable wins.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => std::path::PathBuf::from(path),
        None => match protoc_bin_vendored::protoc_bin_path() {
            Ok(path) => path,
            Err(e) => {
                eprintln!("no vendored protoc for this platform ({e}); set PROTOC to a protoc binary");
                std::process::exit(1);
            }
        },
    };
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    if let Err(e) = config.compile_protos(&["proto/onnx.proto"], &["proto/"]) {
        eprintln!("compiling proto/onnx.proto failed: {e}");
        std::process::exit(1);
    }
}
