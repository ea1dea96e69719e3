//! Issue 15, the file-safety and command-line half: end-to-end tests of the
//! real binary for every class of input that used to lose, overwrite or leak
//! a file, block, or panic. Every test checks the exit code, that no panic
//! text appears, that no input changed and that nothing was written outside
//! the output path.
#![cfg(unix)]

mod common;

use assert_cmd::Command;
use common::onnx_models::{bytes, diamond, fork_join, with_external_weight};
use onnx_memsched::onnx::pb;
use prost::Message;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn tool() -> Command {
    let mut cmd = Command::cargo_bin("onnx-memsched").expect("binary built");
    // A safety net against a hang, not a timing assertion: every run here takes well under a second.
    cmd.timeout(Duration::from_secs(120));
    cmd
}

struct Run {
    code: Option<i32>,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the tool runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic text: {stderr}");
    Run { code: out.status.code(), stderr }
}

fn expect(cmd: &mut Command, code: i32) -> Run {
    let r = run(cmd);
    assert_eq!(r.code, Some(code), "stderr: {}", r.stderr);
    r
}

/// The names in `dir`.
fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs").success();
    assert!(ok, "mkfifo {}", path.display());
}


fn write(path: &Path, data: &[u8]) -> PathBuf {
    fs::write(path, data).unwrap();
    path.to_path_buf()
}

fn node_names(path: &Path) -> Vec<String> {
    let m = pb::ModelProto::decode(fs::read(path).unwrap().as_slice()).unwrap();
    m.graph.unwrap().node.iter().map(|n| n.name().to_string()).collect()
}

// ---- item 6: bounded input, never blocking ----

#[test]
fn special_files_as_input_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let r = expect(tool().arg("/dev/zero").arg(&out), 1);
    assert!(r.stderr.contains("/dev/zero") && r.stderr.contains("not a regular file"), "{}", r.stderr);
    // A FIFO nobody writes to: refused at once instead of waiting forever.
    let fifo = dir.path().join("in.onnx");
    mkfifo(&fifo);
    let r = expect(tool().arg(&fifo).arg(&out), 1);
    assert!(r.stderr.contains("in.onnx") && r.stderr.contains("a FIFO") && r.stderr.contains("`-`"), "{}", r.stderr);
    assert_eq!(listing(dir.path()), names(&["in.onnx"]));
}

#[test]
fn inputs_over_2_gib_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse file: 3 GiB long, no disk used, instant to make.
    let big = dir.path().join("big.onnx");
    fs::File::create(&big).unwrap().set_len(3 << 30).unwrap();
    let out = dir.path().join("o.onnx");
    let r = expect(tool().arg(&big).arg(&out), 1);
    assert!(r.stderr.contains("big.onnx") && r.stderr.contains("2 GiB"), "{}", r.stderr);
    assert!(r.stderr.contains(&(3u64 << 30).to_string()), "names the size: {}", r.stderr);
    // The same file on standard input (a redirection) is refused by its size too.
    let done = std::process::Command::new(assert_cmd::cargo::cargo_bin("onnx-memsched"))
        .arg("-")
        .arg(&out)
        .stdin(fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("<stdin>") && stderr.contains("2 GiB"), "{stderr}");
    assert!(!out.exists());
}

// ---- item 8: numeric flags ----

#[test]
fn numeric_flags_refuse_nan_infinity_and_negatives_as_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&diamond()));
    for bad in ["nan", "NaN", "inf", "-inf", "infinity", "-1", "-0.5", "1e400", "soon", ""] {
        let r = expect(tool().arg(format!("--time-limit={bad}")).arg("--dry-run").arg(&input), 2);
        assert!(r.stderr.contains("--time-limit"), "{bad}: {}", r.stderr);
    }
    for bad in ["nan", "inf", "-1", "1e999"] {
        let r = expect(tool().arg("--check").arg(format!("--tolerance={bad}")).arg(&input), 2);
        assert!(r.stderr.contains("--tolerance"), "{bad}: {}", r.stderr);
    }
    for bad in ["99999999999999999999999", "18446744073709551616", "99999999999GiB"] {
        let r = expect(tool().args(["--fail-above", bad, "--dry-run"]).arg(&input), 2);
        assert!(r.stderr.contains("--fail-above"), "{bad}: {}", r.stderr);
    }
    assert_eq!(listing(dir.path()), names(&["m.onnx"]));
}

#[test]
fn huge_time_limits_are_clamped_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&fork_join(true)));
    // 9.3e18 s used to overflow Instant + Duration (exit 101); 1e300 would not even fit a Duration.
    for limit in ["9.3e18", "1e300", "18446744073709551615", "0"] {
        let out = dir.path().join("o.onnx");
        expect(tool().args(["-q", "--time-limit", limit]).arg(&input).arg(&out), 0);
        assert_eq!(node_names(&out).len(), 5, "{limit}");
    }
    // A tolerance of 0 and a huge one are fine.
    expect(tool().args(["-q", "--check", "--tolerance", "1e300"]).arg(&input), 0);
}

// ---- item 11: batch mode collisions ----

#[test]
fn batch_inputs_with_one_file_name_are_refused_before_any_write() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, out) = (root.path().join("a"), root.path().join("b"), root.path().join("out"));
    for d in [&a, &b, &out] {
        fs::create_dir(d).unwrap();
    }
    let ma = write(&a.join("m.onnx"), &bytes(&diamond()));
    let mb = write(&b.join("m.onnx"), &bytes(&fork_join(true)));
    let r = expect(tool().arg("--out-dir").arg(&out).arg(&ma).arg(&mb), 2);
    assert!(
        r.stderr.contains("a/m.onnx") && r.stderr.contains("b/m.onnx") && r.stderr.contains("same file"),
        "{}",
        r.stderr
    );
    assert!(listing(&out).is_empty(), "nothing written");
    // One input sits in the output folder: the other model's result would replace it.
    let inside = write(&out.join("m.onnx"), &bytes(&diamond()));
    let r = expect(tool().arg("--out-dir").arg(&out).arg(&inside).arg(&mb), 2);
    assert!(r.stderr.contains("would destroy an input") || r.stderr.contains("same file"), "{}", r.stderr);
    assert_eq!(fs::read(&inside).unwrap(), bytes(&diamond()), "the input is unchanged");
    assert_eq!(listing(&out), names(&["m.onnx"]));
    // Batch reports collide the same way, even in a dry run.
    let report = root.path().join("r.json");
    let r =
        expect(tool().arg("--dry-run").arg("--report").arg(&report).arg("--out-dir").arg(&out).arg(&ma).arg(&mb), 2);
    assert!(r.stderr.contains("report"), "{}", r.stderr);
    assert_eq!(listing(root.path()), names(&["a", "b", "out"]));
    // A model in the output folder on its own is rewritten in place, as before.
    expect(tool().args(["-q", "--scheduler", "dfs", "--out-dir"]).arg(&out).arg(&inside), 0);
    assert_eq!(node_names(&inside), ["b", "a", "c", "y"]);
}

#[test]
fn batch_data_copies_of_different_files_to_one_place_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, out) = (root.path().join("a"), root.path().join("b"), root.path().join("out"));
    for d in [&a, &b, &out] {
        fs::create_dir(d).unwrap();
    }
    let ma = write(&a.join("one.onnx"), &bytes(&with_external_weight("w.data")));
    let mb = write(&b.join("two.onnx"), &bytes(&with_external_weight("w.data")));
    write(&a.join("w.data"), &[1; 16]);
    write(&b.join("w.data"), &[2; 16]);
    let r = expect(tool().arg("--out-dir").arg(&out).arg(&ma).arg(&mb), 2);
    assert!(r.stderr.contains("w.data") && r.stderr.contains("same file"), "{}", r.stderr);
    assert!(listing(&out).is_empty());
    // Two models sharing one data file: one copy, no conflict.
    let mc = write(&a.join("three.onnx"), &bytes(&with_external_weight("w.data")));
    expect(tool().arg("-q").arg("--out-dir").arg(&out).arg(&ma).arg(&mc), 0);
    assert_eq!(listing(&out), names(&["one.onnx", "three.onnx", "w.data"]));
    assert_eq!(fs::read(out.join("w.data")).unwrap(), [1; 16]);
}

// ---- item 12: external data through symbolic links ----

#[test]
fn a_data_symlink_to_a_secret_is_never_copied() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    let secret = write(&root.path().join("secret.key"), b"do not publish me");
    symlink(&secret, src.join("w.data")).unwrap();
    let input = write(&src.join("m.onnx"), &bytes(&with_external_weight("w.data")));
    let r = expect(tool().arg(&input).arg(dst.join("o.onnx")), 0);
    assert!(
        r.stderr.contains("warning: external data `w.data` not copied") && r.stderr.contains("outside"),
        "{}",
        r.stderr
    );
    assert_eq!(listing(&dst), names(&["o.onnx"]), "the secret is not next to the output");
    assert_eq!(fs::read(&secret).unwrap(), b"do not publish me");
}

#[test]
fn a_symlinked_folder_in_the_output_folder_is_not_written_through() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst, elsewhere) = (root.path().join("src"), root.path().join("dst"), root.path().join("elsewhere"));
    for d in [&src, &dst, &elsewhere] {
        fs::create_dir(d).unwrap();
    }
    fs::create_dir(src.join("sub")).unwrap();
    write(&src.join("sub/w.data"), &[3; 16]);
    symlink(&elsewhere, dst.join("sub")).unwrap();
    let input = write(&src.join("m.onnx"), &bytes(&with_external_weight("sub/w.data")));
    let r = expect(tool().arg(&input).arg(dst.join("o.onnx")), 0);
    assert!(r.stderr.contains("symbolic link") && r.stderr.contains("not copied"), "{}", r.stderr);
    assert!(listing(&elsewhere).is_empty(), "nothing written outside the output folder");
    // A data file that is a FIFO is not copied either (it would block or never end).
    let src2 = root.path().join("src2");
    fs::create_dir(&src2).unwrap();
    mkfifo(&src2.join("w.data"));
    let input = write(&src2.join("m.onnx"), &bytes(&with_external_weight("w.data")));
    let r = expect(tool().arg(&input).arg(elsewhere.join("o.onnx")), 0);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    assert_eq!(listing(&elsewhere), names(&["o.onnx"]));
}

// ---- item 13: --report / --plot over an input or another output, written atomically ----

#[test]
fn report_or_plot_over_an_input_or_another_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&diamond()));
    let out = dir.path().join("o.onnx");
    let alias = dir.path().join("alias.onnx");
    symlink("m.onnx", &alias).unwrap();
    let spelled = dir.path().join(".").join("m.onnx");
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["--report".into(), input.clone().into(), input.clone().into(), out.clone().into()],
        vec!["--plot".into(), alias.clone().into(), input.clone().into(), out.clone().into()],
        vec!["--report".into(), spelled.clone().into(), "--dry-run".into(), input.clone().into()],
        vec!["--plot".into(), out.clone().into(), input.clone().into(), out.clone().into()],
        vec![
            "--plot".into(),
            "p.svg".into(),
            "--report".into(),
            "./p.svg".into(),
            "--dry-run".into(),
            input.clone().into(),
        ],
    ];
    for args in cases {
        let r = expect(tool().current_dir(dir.path()).args(&args), 2);
        assert!(
            r.stderr.contains("error:") && (r.stderr.contains("input") || r.stderr.contains("same file")),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(fs::read(&input).unwrap(), bytes(&diamond()), "{args:?}: input changed");
        assert_eq!(listing(dir.path()), names(&["alias.onnx", "m.onnx"]), "{args:?}");
    }
}

#[test]
fn report_and_plot_replace_their_file_by_rename() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&fork_join(true)));
    let report = write(&dir.path().join("r.json"), b"old report");
    let plot = write(&dir.path().join("p.svg"), b"old plot");
    let (report_inode, plot_inode) = (fs::metadata(&report).unwrap().ino(), fs::metadata(&plot).unwrap().ino());
    // A second name for the old files: written in place, they would change too.
    fs::hard_link(&report, dir.path().join("r.old")).unwrap();
    fs::hard_link(&plot, dir.path().join("p.old")).unwrap();
    expect(tool().args(["-q", "--dry-run", "--report"]).arg(&report).arg("--plot").arg(&plot).arg(&input), 0);
    assert_ne!(fs::metadata(&report).unwrap().ino(), report_inode, "the report is a new file renamed into place");
    assert_ne!(fs::metadata(&plot).unwrap().ino(), plot_inode);
    assert_eq!(fs::read(dir.path().join("r.old")).unwrap(), b"old report");
    assert_eq!(fs::read(dir.path().join("p.old")).unwrap(), b"old plot");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["nodes"], 5);
    assert!(fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    assert_eq!(listing(dir.path()), names(&["m.onnx", "p.old", "p.svg", "r.json", "r.old"]), "no temporary file left");
}

// ---- item 14: OUTPUT over the model's own data; models from standard input ----

#[test]
fn output_over_the_models_own_external_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&with_external_weight("m.onnx.data")));
    let data = write(&dir.path().join("m.onnx.data"), &[9; 16]);
    for target in [data.clone(), dir.path().join("./m.onnx.data")] {
        let r = expect(tool().arg(&input).arg(&target), 2);
        assert!(r.stderr.contains("external data `m.onnx.data`") && r.stderr.contains("destroy"), "{}", r.stderr);
    }
    let r = expect(tool().arg("--report").arg(&data).arg("--dry-run").arg(&input), 2);
    assert!(r.stderr.contains("--report"), "{}", r.stderr);
    assert_eq!(fs::read(&data).unwrap(), [9; 16], "the weights survive");
    assert_eq!(listing(dir.path()), names(&["m.onnx", "m.onnx.data"]));
    // In place stays allowed.
    expect(tool().arg("-q").arg(&input).arg(&input), 0);
    assert_eq!(fs::read(&data).unwrap(), [9; 16]);
}

#[test]
fn a_model_from_stdin_gets_no_data_copies_from_the_working_folder() {
    let root = tempfile::tempdir().unwrap();
    let (cwd, dst) = (root.path().join("cwd"), root.path().join("dst"));
    fs::create_dir(&cwd).unwrap();
    fs::create_dir(&dst).unwrap();
    write(&cwd.join("w.data"), b"an unrelated file that happens to have this name");
    let model = bytes(&with_external_weight("w.data"));
    let r = expect(tool().current_dir(&cwd).arg("-").arg(dst.join("o.onnx")).write_stdin(model.clone()), 0);
    assert!(
        r.stderr.contains("standard input") && r.stderr.contains("w.data") && r.stderr.contains("not copied"),
        "{}",
        r.stderr
    );
    assert_eq!(listing(&dst), names(&["o.onnx"]));
    assert_eq!(fs::read(dst.join("o.onnx")).unwrap().len(), model.len());
}

// ---- item 15: interrupted and failed runs leave nothing behind ----

/// Kills the child if the test fails before it ends (SIGKILL), so a failing
/// test never leaves a process blocked on a FIFO.
struct Reap(Option<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The tool stages the model (and copies its data) and then blocks opening
/// the `--report` FIFO, which no one reads: a signal at that point must
/// remove the temporary model and the data copy and exit 128 + signal.
fn interrupted_while_writing(signal: &str, code: i32) {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    let input = write(&src.join("m.onnx"), &bytes(&with_external_weight("m.data")));
    write(&src.join("m.data"), &[5; 16]);
    let fifo = dst.join("r.json");
    mkfifo(&fifo);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("onnx-memsched"))
        .arg("--report")
        .arg(&fifo)
        .arg(&input)
        .arg(dst.join("o.onnx"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reap = Reap(Some(child));
    let pid = reap.0.as_ref().unwrap().id();
    // Wait (no timing assertion: only a generous cap against a hang) until
    // the temporary model and the data copy exist.
    let staged = |d: &Path| {
        let l = listing(d);
        l.contains("m.data") && l.iter().any(|n| n.starts_with(".onnx-memsched-") && n.ends_with(".tmp"))
    };
    let mut waited = 0;
    while !staged(&dst) {
        assert!(reap.0.as_mut().unwrap().try_wait().unwrap().is_none(), "the tool ended before blocking on the FIFO");
        assert!(waited < 6000, "the tool never staged its outputs: {:?}", listing(&dst));
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
    }
    let sent = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(sent.success());
    let out = reap.0.take().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains("interrupted") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(listing(&dst), names(&["r.json"]), "only the FIFO is left: no model, no temporary file, no data copy");
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(fs::read(src.join("m.data")).unwrap(), [5; 16]);
    assert_eq!(listing(&src), names(&["m.data", "m.onnx"]));
}

#[test]
fn sigterm_while_writing_removes_every_unfinished_file() {
    interrupted_while_writing("TERM", 143);
}

#[test]
fn sigint_while_writing_removes_every_unfinished_file() {
    interrupted_while_writing("INT", 130);
}

#[test]
fn a_failed_run_removes_the_data_copies_it_made() {
    // Nothing can be created in /proc: the report fails after the model was
    // staged and its data copied, so the run must take the copy back.
    if !Path::new("/proc/self").exists() {
        eprintln!("no /proc: skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    let input = write(&src.join("m.onnx"), &bytes(&with_external_weight("sub/m.data")));
    fs::create_dir(src.join("sub")).unwrap();
    write(&src.join("sub/m.data"), &[6; 16]);
    let r = expect(
        tool().args(["--report", "/proc/onnx-memsched-test-report.json"]).arg(&input).arg(dst.join("o.onnx")),
        1,
    );
    assert!(r.stderr.contains("report: cannot write /proc/onnx-memsched-test-report.json"), "{}", r.stderr);
    assert!(listing(&dst).is_empty(), "no model, no copy, no folder made for it: {:?}", listing(&dst));
    assert_eq!(fs::read(src.join("sub/m.data")).unwrap(), [6; 16]);
}

// ---- item 16: symbolic-link and FIFO outputs ----

#[test]
fn writing_to_a_symlink_writes_its_target() {
    let root = tempfile::tempdir().unwrap();
    let (dir, real_dir) = (root.path().join("links"), root.path().join("real"));
    fs::create_dir(&dir).unwrap();
    fs::create_dir(&real_dir).unwrap();
    let real = write(&real_dir.join("m.onnx"), &bytes(&diamond()));
    let link = dir.join("m.onnx");
    symlink(&real, &link).unwrap();
    // In place through the link: the real model is reordered, the link stays a link.
    expect(tool().args(["-q", "--scheduler", "dfs"]).arg(&link).arg(&link), 0);
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(node_names(&real), ["b", "a", "c", "y"]);
    assert_eq!(listing(&dir), names(&["m.onnx"]));
    assert_eq!(listing(&real_dir), names(&["m.onnx"]), "no temporary file left");
    // A dangling link: the file it names is created.
    let input = write(&root.path().join("in.onnx"), &bytes(&diamond()));
    let dangling = dir.join("new.onnx");
    symlink(real_dir.join("created.onnx"), &dangling).unwrap();
    expect(tool().args(["-q", "--scheduler", "dfs"]).arg(&input).arg(&dangling), 0);
    assert!(fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    assert_eq!(node_names(&real_dir.join("created.onnx")), ["b", "a", "c", "y"]);
}

#[test]
fn a_fifo_output_is_written_directly() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir.path().join("m.onnx"), &bytes(&diamond()));
    let expected = dir.path().join("expected.onnx");
    expect(tool().args(["-q", "--scheduler", "dfs"]).arg(&input).arg(&expected), 0);
    let fifo = dir.path().join("out.onnx");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    expect(tool().args(["-q", "--scheduler", "dfs"]).arg(&input).arg(&fifo), 0);
    let got = reader.join().unwrap();
    assert_eq!(got, fs::read(&expected).unwrap());
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    assert_eq!(listing(dir.path()), names(&["expected.onnx", "m.onnx", "out.onnx"]));
    // /dev/stdout (here a pipe) is written directly too.
    let out = tool().args(["-q", "--scheduler", "dfs"]).arg(&input).arg("/dev/stdout").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, fs::read(&expected).unwrap());
}
