//! The `onnx-memsched` command: a thin shell over [`onnx_memsched::cli`].
//!
//! `onnx-memsched --size-worker` (hidden, first argument only) is the sizing
//! worker the command starts for itself ([`onnx_memsched::sizes::isolate`]).

use std::process::ExitCode;

use onnx_memsched::sizes::isolate;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == isolate::WORKER_FLAG) {
        return ExitCode::from(isolate::serve());
    }
    ExitCode::from(onnx_memsched::cli::main_with_args(std::env::args_os()))
}
