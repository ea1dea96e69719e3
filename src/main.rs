//! The `onnx-memsched` command: a thin shell over [`onnx_memsched::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(onnx_memsched::cli::main_with_args(std::env::args_os()))
}
