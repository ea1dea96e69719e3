//! Writes fuzz cases for `scripts/fuzz_campaign.py`: the generator of
//! `tests/common/fuzz_gen.rs` (the same one `tests/fuzz.rs` runs in CI).
//!
//! ```text
//! cargo run --release --example fuzz_gen -- OUTDIR FIRST_SEED COUNT [SEED_DIR ...]
//! ```
//!
//! writes `OUTDIR/case_SEED.onnx` and `OUTDIR/case_SEED.args` (the options,
//! one per line; the first line is a `#` comment naming the mutations) for
//! seeds `FIRST_SEED..FIRST_SEED+COUNT`, mutating the built-in models and
//! the `*.onnx` files of the SEED_DIRs (up to 2 MB each).

#[path = "../tests/common/fuzz_gen.rs"]
mod fuzz_gen;

use prost::Message;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fuzz_gen OUTDIR FIRST_SEED COUNT [SEED_DIR ...]";
    if args.len() < 3 {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let (Ok(first), Ok(count)) = (args[1].parse::<u64>(), args[2].parse::<u64>()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let out = PathBuf::from(&args[0]);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("fuzz_gen: cannot create {}: {e}", out.display());
        return ExitCode::from(1);
    }
    let mut seeds = fuzz_gen::builtin_seeds();
    let dirs: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
    seeds.extend(fuzz_gen::file_seeds(&dirs, 2 << 20));
    for seed in first..first + count {
        let (what, model, opts) = fuzz_gen::case(seed, &seeds);
        let base = out.join(format!("case_{seed}"));
        let text = format!("# {what}\n{}\n", opts.join("\n"));
        if let Err(e) = std::fs::write(base.with_extension("onnx"), model.encode_to_vec())
            .and_then(|()| std::fs::write(base.with_extension("args"), text))
        {
            eprintln!("fuzz_gen: cannot write {}: {e}", base.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
