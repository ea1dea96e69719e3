//! The `onnx-memsched` command line, as a library function so that the
//! binary (`src/main.rs`) and the Python package's console script run the
//! very same code: [`main_with_args`].

use crate::onnx::external::{self, DataOutcome};
use crate::onnx::OnnxFile;
use crate::output::paths::{Sink, Source};
use crate::output::{self, Location, Outputs};
use crate::plan::plan_with_progress;
use crate::schedule::Scheduler;
use crate::sizes::isolate::Worker;
use crate::{plot, report};
use clap::Parser;
use std::path::PathBuf;

const ABOUT: &str = "Reorder the nodes of an ONNX model for the lowest peak activation memory.";

const LONG_ABOUT: &str = "\
Reorder the nodes of an ONNX model for the lowest peak activation memory.

Runtimes and code generators that execute nodes in file order (onnx2c, \
onnx-mlir, TensorRT's parser, onnxruntime with PRIORITY_BASED order) then need \
less memory. Only the order of graph.node changes: every other byte of the \
file stays as it was, so the output has the input's size.

Memory model: running a node allocates its outputs while its inputs are still \
live; a tensor is freed after its last consumer. Graph inputs are live from \
the start, graph outputs to the end, weights (initializers, Constant outputs) \
are not counted. The peak is the most bytes live at any step. The memory \
inside If, Loop and Scan bodies counts at its node's step (an If its larger \
branch), and each body's node order is optimized too (README, \"The memory \
model\").";

const EXAMPLES: &str = "\
Examples:
  onnx-memsched models/randwire.onnx /tmp/out.onnx
  onnx-memsched --dry-run --report r.json model.onnx
  onnx-memsched --dim batch=8 model.onnx model.onnx     (rewrite in place)
  cat model.onnx | onnx-memsched - - > out.onnx

What the tool refuses, so that no run loses or leaks a file:
  - two outputs on one file (model, --report, --plot, data copies; with
    --out-dir two inputs of the same name), or an output on an input or on
    one of its external data files (exit 2; INPUT == OUTPUT is allowed);
  - an input that is not a regular file (a FIFO, a device: use `-`), or
    bigger than 2 GiB, protobuf's limit (exit 1);
  - a model on `-` that has not fully arrived within --time-limit (exit 1;
    the time limit counts from the start of reading);
  - copying external data that is absolute, leaves the model's folder
    (`..`, or a symbolic link to elsewhere) or is not a regular file, and
    writing it through a symbolic link or over an existing file (warning).
Outputs go to a temporary file renamed into place at the end; an
interrupted (SIGINT, SIGTERM: exit 130, 143) or failed run leaves none of
them, and removes the data copies it made. Writing to a symbolic link writes
the file it points to; a FIFO or device (/dev/stdout) is written directly. A
model read from `-` gets no data copies (its data files are relative to a
folder the tool does not know).

Exit codes: 0 success, 1 bad input or failure, 2 usage error, 3 a --check or
--fail-above budget not met, 130/143 interrupted.";

#[derive(Parser, Debug)]
#[command(name = "onnx-memsched", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// INPUT OUTPUT: the model to read and where to write the reordered
    /// model (`-` for standard input/output; OUTPUT may be INPUT's path; no
    /// OUTPUT with --dry-run or --check). With --out-dir: any number of
    /// input models.
    #[arg(required = true, value_name = "MODELS")]
    paths: Vec<PathBuf>,
    /// Process many models in parallel, writing each to DIR under its own
    /// file name; one summary line per model; a failing model does not stop
    /// the others (exit 1 at the end if any failed).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// How to choose the order. `auto` proves optimality where it can; the
    /// others are single methods, for comparison.
    #[arg(long, default_value = "auto", value_parser = scheduler_names())]
    scheduler: String,
    /// The runtime the written order is for. The default, `all-runtimes`,
    /// gives the least file-order peak whose file onnxruntime's default
    /// order does not run at a higher peak than the input file.
    #[arg(long, default_value = "all-runtimes", value_parser = target_names())]
    target: String,
    /// Measure and report without writing a model.
    #[arg(long)]
    dry_run: bool,
    /// Also write a JSON report to this file.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Draw live memory over the steps of the input and the new order, with
    /// the lower bound, as an SVG picture.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// For CI of model repositories: measure only, write nothing, and exit 0
    /// if the file's order peaks within --tolerance of the best order found,
    /// 3 otherwise.
    #[arg(long)]
    check: bool,
    /// How far above the best peak (in percent) --check accepts the file's order.
    #[arg(long, value_name = "PERCENT", default_value_t = 1.0, requires = "check", value_parser = parse_percent)]
    tolerance: f64,
    /// Exit 3 (writing nothing) when even the best order peaks above this
    /// many bytes (suffixes KB, MB, GB, KiB, MiB, GiB allowed), naming the
    /// step and the tensors live at the peak.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    fail_above: Option<u64>,
    /// Bind a symbolic dimension, e.g. `--dim batch=8` (repeatable).
    /// Unbound symbols are taken as 1, with a warning.
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = parse_dim)]
    dims: Vec<(String, i64)>,
    /// Set a graph input's shape, e.g. `--input-shape images=1x3x224x224`
    /// (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = parse_shape)]
    input_shapes: Vec<(String, Vec<u64>)>,
    /// Take each dim that nothing can determine (data-dependent, such as
    /// NonZero's count or a Loop's trip count) as N; every figure then rests
    /// on it and the report says which tensors it touched.
    #[arg(long, value_name = "N")]
    unknown_dim: Option<u64>,
    /// Memory model: graph inputs stay live for the whole run (the caller
    /// owns them, as in onnxruntime) instead of being freed after their last
    /// use.
    #[arg(long)]
    inputs_live_whole_run: bool,
    /// Memory model: an element-wise or reshape-like node writes its output
    /// over an input of the same size that dies at it (as onnxruntime and
    /// TFLite do).
    #[arg(long)]
    inplace: bool,
    /// Finish within this many seconds (reading a model from `-`, sizing,
    /// search and checks), keeping the best order found. A number >= 0; more
    /// than a week (604800) is taken as a week.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_seconds)]
    time_limit: f64,
    /// Also write the memory plan for the written order to this file: every
    /// activation tensor's offset in one arena, the arena's size and its
    /// lower bound (JSON; see the README for how a code generator reads it).
    #[arg(long, value_name = "FILE.json")]
    memory_plan: Option<PathBuf>,
    /// Alignment in bytes of the memory plan's offsets and sizes (each size
    /// is rounded up to it).
    #[arg(long, value_name = "BYTES", default_value_t = onnx_memsched_default_alignment(), value_parser = parse_alignment)]
    align: u64,
    /// Stop searching once the peak is within PERCENT of the lower bound
    /// (the report then says `optimal: false` and gives the gap); `--gap 0`
    /// searches until the peak is proved optimal or the time is up.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.01)]
    gap: f64,
    /// Print only warnings and errors.
    #[arg(long, short)]
    quiet: bool,
}

fn scheduler_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        Scheduler::ALL.iter().map(|(_, name, help)| clap::builder::PossibleValue::new(*name).help(*help)),
    )
}

fn target_names() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("all-runtimes").help(
            "one file no modelled runtime pays more for (default): the least peak in file order (code generators; onnxruntime PRIORITY_BASED, which runs Shape/Size nodes as soon as they are ready, so they are written there) among the files for which onnxruntime's default order (ORT_DISABLE_ALL) peaks no higher than for the input file; among equals, the lowest default-order peak. The summary says if the file-order optimum had to be given up",
        ),
        PossibleValue::new("file-order").help(
            "runtimes that execute nodes in file order only (onnx2c, onnx-mlir, TensorRT's parser, onnxruntime PRIORITY_BASED): the least file-order peak, whatever onnxruntime's default order then costs",
        ),
        PossibleValue::new("ort-default").help(
            "onnxruntime with default execution order and graph optimizations off (ORT_DISABLE_ALL), whose reverse depth-first order file order only steers: choose the best schedule it can reach and the file order that makes it run it. With optimizations on, fused nodes get new indices and the steering does not hold: reorder the model onnxruntime saves at level `extended` instead",
        ),
    ])
}

fn parse_dim(s: &str) -> Result<(String, i64), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let value: i64 = value.trim().parse().map_err(|_| format!("`{value}` is not an integer"))?;
    if name.trim().is_empty() || value < 0 {
        return Err(format!("expected NAME=VALUE with VALUE >= 0, got `{s}`"));
    }
    Ok((name.trim().to_string(), value))
}

const fn onnx_memsched_default_alignment() -> u64 {
    crate::arena::DEFAULT_ALIGNMENT
}

fn parse_alignment(s: &str) -> Result<u64, String> {
    let value = parse_bytes(s)?;
    if value == 0 || value > 1 << 30 {
        return Err(format!("`{s}`: the alignment must be between 1 byte and 1 GiB"));
    }
    Ok(value)
}

/// `--time-limit`: a finite number of seconds >= 0, clamped to
/// [`crate::plan::MAX_TIME_LIMIT`] so that no deadline computed from it
/// overflows.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let value: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("`{s}` is not a number of seconds >= 0"));
    }
    Ok(value.min(crate::plan::MAX_TIME_LIMIT.as_secs_f64()))
}

/// `--tolerance`: a finite percentage >= 0.
fn parse_percent(s: &str) -> Result<f64, String> {
    let value: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a percentage"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("`{s}` is not a percentage >= 0"));
    }
    Ok(value)
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a byte count such as 65536, 512KiB or 2MB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit `{other}` in `{s}`; use B, KB, MB, GB, KiB, MiB or GiB")),
    };
    let bytes = (number * factor).round();
    // 2^64 is exactly representable; anything at or above it does not fit.
    if !(bytes.is_finite() && bytes < 18_446_744_073_709_551_616.0) {
        return Err(format!("`{s}` is more bytes than the tool can count (at most 2^64 - 1)"));
    }
    Ok(bytes as u64)
}

fn parse_shape(s: &str) -> Result<(String, Vec<u64>), String> {
    let (name, dims) = s.split_once('=').ok_or_else(|| format!("expected NAME=1x3x224x224, got `{s}`"))?;
    let dims = if dims.trim().is_empty() {
        Vec::new() // a scalar
    } else {
        dims.split(['x', ','])
            .map(|d| d.trim().parse::<u64>().map_err(|_| format!("`{d}` in `{s}` is not a dimension")))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok((name.trim().to_string(), dims))
}

/// How a run ends: success, a budget or check that failed (exit 3), a usage
/// error found once the model is read (exit 2), or an error (exit 1).
enum Exit {
    Ok,
    Over(String),
    Usage(String),
}

/// Runs the command line `args` (the program name first, as in
/// `std::env::args_os`) and returns the process exit code: 0 success, 1 bad
/// input or failure, 2 usage error, 3 a budget or check not met. Help and
/// version requests print to stdout and return 0. Everything the command
/// says goes to stderr (and the model to stdout for `-`), exactly as the
/// `onnx-memsched` binary does: the binary and the Python package's console
/// script are both this function.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    main_with_args_and_worker(args, Worker::current_exe())
}

/// [`main_with_args`], with size inference run in `worker` (see
/// [`crate::sizes::isolate`]; `None` sizes in this process, where a crash
/// inside tract ends the process). [`main_with_args`] passes this executable
/// with `--size-worker`, which only the `onnx-memsched` binary serves; a
/// host program (the Python package) passes a command that runs
/// [`crate::sizes::isolate::serve`].
pub fn main_with_args_and_worker<I, T>(args: I, worker: Option<Worker>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let worker = worker.as_ref();
    // SIGINT/SIGTERM remove the files this run has not finished (exit 130/143).
    if let Err(e) = output::cleanup::install_signal_handlers() {
        eprintln!(
            "onnx-memsched: warning: cannot handle SIGINT/SIGTERM ({e}); an interrupted run may leave temporary files"
        );
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code().clamp(0, 255) as u8;
        }
    };
    if let Err(message) = check_usage(&cli) {
        use clap::CommandFactory;
        let e = Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message);
        let _ = e.print();
        return 2;
    }
    if let Some(dir) = &cli.out_dir {
        return run_batch(&cli, dir, worker);
    }
    let from = cli.paths[0].clone();
    let to = if cli.dry_run || cli.check { None } else { cli.paths.get(1).cloned() };
    match run(&cli, &from, to.as_deref(), worker, None) {
        Ok(Exit::Ok) => 0,
        Ok(Exit::Over(message)) => {
            eprintln!("onnx-memsched: {message}");
            3
        }
        Ok(Exit::Usage(message)) => {
            eprintln!("onnx-memsched: error: {message}");
            2
        }
        Err(message) => {
            eprintln!("onnx-memsched: error: {message}");
            1
        }
    }
}

/// Argument combinations clap cannot express; a message means exit 2.
fn check_usage(cli: &Cli) -> Result<(), String> {
    let measuring = cli.dry_run || cli.check;
    if !(cli.gap >= 0.0 && cli.gap < 100.0) {
        return Err(format!("--gap must be a percentage >= 0 and < 100, got {}", cli.gap));
    }
    if cli.out_dir.is_some() {
        if cli.plot.is_some() {
            return Err("--plot draws one model; it cannot be combined with --out-dir".into());
        }
        if cli.paths.iter().any(|p| p.as_os_str() == "-") {
            return Err("with --out-dir every model must be a file, not `-`".into());
        }
        return Ok(());
    }
    match (cli.paths.len(), measuring) {
        (2, false) | (1, true) => Ok(()),
        (1, false) => Err("missing OUTPUT: give INPUT OUTPUT, or --dry-run / --check to only measure".into()),
        (2, true) => Err("--dry-run and --check write nothing: drop OUTPUT".into()),
        _ => Err("too many models: give INPUT OUTPUT, or use --out-dir DIR for many models".into()),
    }
}

/// `--out-dir`: every model in parallel, one line each, failures counted.
fn run_batch(cli: &Cli, dir: &std::path::Path, worker: Option<&Worker>) -> u8 {
    use rayon::prelude::*;
    if !dir.is_dir() {
        eprintln!("onnx-memsched: error: output folder {} does not exist; create it first", dir.display());
        return 1;
    }
    let to_of = |input: &PathBuf| {
        let name = input.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("model.onnx"));
        if cli.dry_run || cli.check {
            None
        } else {
            Some(dir.join(name))
        }
    };
    // Every output of every model, and every file they read, must be distinct
    // before any model is written: read each model first, once, for its
    // external data locations and for its run (a model that cannot be read
    // fails in its own run below).
    let budget = output::once::Budget::new(output::once::KEEP_BYTES);
    let (jobs, reads): (Vec<Job>, Vec<output::once::Read>) = cli
        .paths
        .par_iter()
        .map(|input| {
            let from = Location::parse(input);
            let (locations, read) = match read_model(&from, None) {
                Ok(file) => (external::locations(&file.model), budget.keep(file)),
                Err(message) => (Vec::new(), output::once::Read::Failed(message)),
            };
            (Job { from, to: to_of(input).map(Location::File), locations }, read)
        })
        .unzip();
    if let Err(message) = check_paths(cli, &jobs) {
        eprintln!("onnx-memsched: error: {message}");
        return 2;
    }
    let results: Vec<Result<Exit, String>> = cli
        .paths
        .par_iter()
        .zip(reads)
        .map(|(input, read)| {
            let to = to_of(input);
            let result = run(cli, input, to.as_deref(), worker, Some(read));
            match &result {
                Ok(Exit::Ok) => {}
                Ok(Exit::Over(message)) => eprintln!("onnx-memsched: {}: {message}", input.display()),
                Ok(Exit::Usage(message)) | Err(message) => eprintln!("onnx-memsched: error: {message}"),
            }
            result
        })
        .collect();
    let failed = results.iter().filter(|r| matches!(r, Err(_) | Ok(Exit::Usage(_)))).count();
    let over = results.iter().filter(|r| matches!(r, Ok(Exit::Over(_)))).count();
    if !cli.quiet {
        eprintln!(
            "{} models: {} ok, {over} over budget or check, {failed} failed",
            results.len(),
            results.len() - failed - over
        );
    }
    if failed > 0 {
        1
    } else if over > 0 {
        3
    } else {
        0
    }
}

/// Reads and parses the model at `from`, standard input within `time_limit`
/// (if given); the error is the run's message.
fn read_model(from: &Location, time_limit: Option<std::time::Duration>) -> Result<OnnxFile, String> {
    let in_name = from.display("<stdin>");
    let bytes = output::read_input_within(from, time_limit).map_err(|e| format!("cannot read {in_name}: {e}"))?;
    OnnxFile::parse(bytes).map_err(|e| format!("{in_name}: {e}"))
}

/// One model's run; `read` is the batch's first reading of it (`None`: read
/// it here).
fn run(
    cli: &Cli,
    from: &std::path::Path,
    to: Option<&std::path::Path>,
    worker: Option<&Worker>,
    read: Option<output::once::Read>,
) -> Result<Exit, String> {
    // --time-limit bounds the run from here, reading included.
    let clock = std::time::Instant::now();
    let batch = cli.out_dir.is_some();
    let from = Location::parse(from);
    let to = to.map(Location::parse);
    let in_name = from.display("<stdin>");
    if let Some(to) = &to {
        output::check_writable(to).map_err(|e| e.to_string())?;
    }
    let report_path = cli.report.as_ref().map(|p| if batch { batch_report_path(p, &from) } else { p.clone() });
    let plan_path = cli.memory_plan.as_ref().map(|p| if batch { batch_report_path(p, &from) } else { p.clone() });
    for path in report_path.iter().chain(&plan_path).chain(&cli.plot) {
        output::check_writable(&Location::File(path.clone())).map_err(|e| e.to_string())?;
    }
    let file = match read {
        None => read_model(&from, Some(std::time::Duration::from_secs_f64(cli.time_limit)))?,
        Some(output::once::Read::Kept(file)) => file,
        Some(output::once::Read::Failed(message)) => return Err(message),
        Some(output::once::Read::Dropped(first)) => {
            let file = read_model(&from, None)?;
            output::once::check_same(&file.bytes, &first).map_err(|e| format!("{in_name}: {e}"))?;
            file
        }
    };
    let locations = match from {
        Location::File(_) => external::locations(&file.model),
        Location::Std => {
            warn_stdin_data(&file, to.as_ref());
            Vec::new()
        }
    };
    if !batch {
        // Batch mode checked every model's paths before starting.
        let job = Job { from: from.clone(), to: to.clone(), locations };
        if let Err(message) = check_paths(cli, std::slice::from_ref(&job)) {
            return Ok(Exit::Usage(message));
        }
    }
    warn_missing_data(&file, &from);
    // The same mapping from options to a plan as the library API's, so the
    // CLI and the Python package cannot drift apart.
    let mut opts = crate::api::Options {
        scheduler: cli.scheduler.clone(),
        target: cli.target.clone(),
        time_limit: cli.time_limit,
        dims: cli.dims.clone(),
        input_shapes: cli.input_shapes.clone(),
        inplace: cli.inplace,
        inputs_live_whole_run: cli.inputs_live_whole_run,
        unknown_dim: cli.unknown_dim,
        gap: cli.gap,
        alignment: cli.align,
        size_worker: worker.cloned(),
    }
    .plan_options()?;
    opts.time_limit = opts.time_limit.saturating_sub(clock.elapsed());
    let started = std::time::Instant::now();
    let show_progress = !cli.quiet && !batch;
    let progress = |line: &str| {
        // Quick runs stay quiet; anything slower than a second says what it does.
        if show_progress && started.elapsed().as_secs_f64() > 1.0 {
            eprintln!("  ... {:>6.1} s  {line}", started.elapsed().as_secs_f64());
        }
    };
    let plan = plan_with_progress(&file, &opts, Some(&progress)).map_err(|e| format!("{in_name}: {e}"))?;
    if batch {
        if !cli.quiet {
            eprintln!("{}", report::one_line(&in_name, &plan));
        }
    } else if !cli.quiet {
        eprint!("{}", report::summary(&in_name, &plan));
    }
    // Every output is staged first and put in place together at the end, so
    // a failure (or a signal) leaves none of them.
    let mut outputs = Outputs::new();
    let verdict = verdict(cli, &plan);
    let mut written = None;
    if let (Some(to), None) = (&to, &verdict) {
        let out_bytes = plan.rewrite(&file);
        outputs.add_model(out_bytes, &file.model, &from, to).map_err(|e| e.to_string())?;
        written = Some(to.display("<stdout>"));
    }
    if let Some(path) = &plan_path {
        let value = crate::arena::json(&plan.graph, &plan.arena);
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n";
        outputs.add(&Location::File(path.clone()), text.into_bytes()).map_err(|e| format!("memory plan: {e}"))?;
    }
    if let Some(path) = &report_path {
        let value = report::json(&in_name, &plan, written.as_deref());
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n";
        outputs.add(&Location::File(path.clone()), text.into_bytes()).map_err(|e| format!("report: {e}"))?;
    }
    if let Some(path) = &cli.plot {
        let short = match &from {
            Location::File(p) => p.file_name().map_or(in_name.clone(), |n| n.to_string_lossy().to_string()),
            Location::Std => in_name.clone(),
        };
        let title = format!("{short}: live activation memory");
        let svg = plot::svg(&title, &plan.before, &plan.after, plan.lower_bound)?;
        outputs.add(&Location::File(path.clone()), svg.into_bytes()).map_err(|e| format!("plot: {e}"))?;
    }
    let outcomes = outputs.commit().map_err(|e| e.to_string())?;
    for outcome in outcomes {
        // Missing data was reported when reading.
        if matches!(outcome, DataOutcome::Missing(_)) {
            continue;
        }
        if let Some(msg) = outcome.message() {
            if outcome.is_warning() || !cli.quiet {
                eprintln!("onnx-memsched: {msg}");
            }
        }
    }
    if let (Some(out_name), false) = (&written, cli.quiet || batch) {
        eprintln!("wrote {out_name}");
    }
    Ok(match verdict {
        Some(message) => Exit::Over(message),
        None => {
            if cli.check && !cli.quiet {
                eprintln!("check passed: the file's order is within {}% of the best order found", cli.tolerance);
            }
            Exit::Ok
        }
    })
}

/// The message of a failed `--fail-above` budget or `--check`, if any.
fn verdict(cli: &Cli, plan: &crate::Plan) -> Option<String> {
    if let Some(budget) = cli.fail_above {
        if plan.after.peak > budget {
            let live = crate::graph::memory::live_at(&plan.graph, &plan.order, plan.after.peak_step, &plan.memory);
            let mut tensors: Vec<_> = live.iter().map(|&t| plan.graph.tensor(t)).filter(|t| t.bytes > 0).collect();
            tensors.sort_by(|a, b| b.bytes.cmp(&a.bytes));
            let listed: Vec<String> =
                tensors.iter().take(8).map(|t| format!("`{}` ({})", t.name, report::human_bytes(t.bytes))).collect();
            let more = if tensors.len() > 8 { format!(" and {} more", tensors.len() - 8) } else { String::new() };
            let at = match plan.after.peak_step {
                None => "at the start".to_string(),
                Some(s) => format!("at step {s}, {}", plan.graph.describe_op(plan.order[s])),
            };
            return Some(format!(
                "over budget: the best order found peaks at {} B ({}), above --fail-above {} B, {at}; live there: {}{more}",
                report::grouped(plan.after.peak),
                report::human_bytes(plan.after.peak),
                report::grouped(budget),
                listed.join(", ")
            ));
        }
    }
    if cli.check {
        let allowed = plan.after.peak as f64 * (1.0 + cli.tolerance / 100.0);
        if plan.before.peak as f64 > allowed {
            return Some(format!(
                "check failed: the file's order peaks at {} B, {:.1}% above the best order found ({} B; tolerance {}%); run onnx-memsched to reorder it",
                report::grouped(plan.before.peak),
                (plan.before.peak as f64 / plan.after.peak.max(1) as f64 - 1.0) * 100.0,
                report::grouped(plan.after.peak),
                cli.tolerance
            ));
        }
    }
    None
}

/// With --out-dir each model gets its own report: `r.json` becomes
/// `r.MODEL.json`.
fn batch_report_path(path: &std::path::Path, from: &Location) -> PathBuf {
    let model = match from {
        Location::File(p) => p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
        Location::Std => "stdin".into(),
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    path.with_file_name(format!("{stem}.{model}.json"))
}

/// One model's paths, for [`check_paths`].
struct Job {
    from: Location,
    to: Option<Location>,
    /// The model's external data locations (none for a model from `-`).
    locations: Vec<String>,
}

/// Refuses (the message is a usage error, exit 2) any two outputs of these
/// jobs on one file, and any output on an input or on one of its external
/// data files, except a model written over its own input.
fn check_paths(cli: &Cli, jobs: &[Job]) -> Result<(), String> {
    let batch = cli.out_dir.is_some();
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let name = job.from.display("<stdin>");
        if let Location::File(input) = &job.from {
            let what = if batch { format!("input {name}") } else { "INPUT".to_string() };
            sources.push(Source { what, path: input.clone(), model_of: Some(j) });
            let folder = job.from.folder();
            for loc in &job.locations {
                let what = format!("external data `{loc}` of {name}");
                sources.push(Source { what, path: folder.join(loc), model_of: None });
            }
        }
        if let Some(Location::File(out)) = &job.to {
            let what = if batch { format!("the output of {name}") } else { "OUTPUT".to_string() };
            sinks.push(Sink { what, path: out.clone(), model_of: Some(j), copy_of: None });
            let (in_dir, out_dir) = (job.from.folder(), Location::File(out.clone()).folder());
            for loc in job.locations.iter().filter(|l| external::is_safe(l)) {
                let what = format!("the copy of external data `{loc}` of {name}");
                let copy_of = Some(in_dir.join(loc));
                sinks.push(Sink { what, path: out_dir.join(loc), model_of: None, copy_of });
            }
        }
        if let Some(report) = &cli.report {
            let path = if batch { batch_report_path(report, &job.from) } else { report.clone() };
            let what = if batch { format!("the report of {name}") } else { "--report".to_string() };
            sinks.push(Sink { what, path, model_of: None, copy_of: None });
        }
        if let Some(memory_plan) = &cli.memory_plan {
            let path = if batch { batch_report_path(memory_plan, &job.from) } else { memory_plan.clone() };
            let what = if batch { format!("the memory plan of {name}") } else { "--memory-plan".to_string() };
            sinks.push(Sink { what, path, model_of: None, copy_of: None });
        }
    }
    if let Some(plot) = &cli.plot {
        sinks.push(Sink { what: "--plot".into(), path: plot.clone(), model_of: None, copy_of: None });
    }
    output::paths::check_collisions(&sources, &sinks)
}

/// A model from standard input names its external data relative to a folder
/// the tool does not know: nothing is checked or copied, and the user is told.
fn warn_stdin_data(file: &OnnxFile, to: Option<&Location>) {
    let locations = external::locations(&file.model);
    if locations.is_empty() {
        return;
    }
    let copy = match to {
        Some(Location::File(p)) => format!("; put them next to {} yourself", p.display()),
        _ => String::new(),
    };
    eprintln!(
        "onnx-memsched: warning: the model from standard input keeps weights in external data ({}) relative to a folder the tool does not know: not checked, not copied{copy}",
        locations.join(", ")
    );
}

fn warn_missing_data(file: &OnnxFile, from: &Location) {
    if *from == Location::Std {
        return; // warn_stdin_data said what there is to say
    }
    let folder = from.folder();
    let missing: Vec<String> =
        external::locations(&file.model).into_iter().filter(|loc| !folder.join(loc).is_file()).collect();
    if !missing.is_empty() {
        eprintln!(
            "onnx-memsched: warning: external data not found next to the model: {} (not needed for scheduling; a runtime will need it)",
            missing.join(", ")
        );
    }
}
