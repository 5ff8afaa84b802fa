//! Helpers shared by `cargo xtask bench model` ([`crate::bench_model`]) and `cargo xtask bench
//! train` ([`crate::bench_train`]).
//!
//! Both commands follow the same recipe: build one example of a workspace crate in release mode,
//! run it and read the JSON object it prints last, then run a PyTorch script with the reference
//! Python on the same shapes and threads, and print a table. What is common to the recipe lives
//! here, parameterised where the two commands differ (which crate and example, which modules the
//! reference imports, how a missing reference is reported), so that both stay in step; what each
//! measures and prints stays in its own module.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The thread count of `--threads`: the option, else every core (`available_parallelism`);
/// zero is refused.
pub fn threads(option: Option<usize>) -> Result<usize> {
    let threads =
        option.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    Ok(threads)
}

/// `cargo build --release -p PACKAGE --example EXAMPLE`, returning the executable's path (read
/// from cargo's JSON messages, so any target directory works). Diagnostics are rendered on
/// stderr as usual.
///
/// Parameterised by `package` and `example` because each bench command builds its own program
/// (rung-model's `bench_model`, rung-train's `bench_train`).
pub fn build_example(root: &Path, package: &str, example: &str) -> Result<PathBuf> {
    build_target(root, "release", &["-p", package], "--example", example)
}

/// `cargo build --profile PROFILE SELECTION KIND NAME` (`SELECTION` is `-p PACKAGE` or
/// `--workspace`, `KIND` is `--example` or `--bin`), returning the executable's path as
/// [`build_example`] does. `--workspace` resolves features as a workspace build does, so that
/// a target of a package that shares burn with the rest reuses that build instead of
/// rebuilding burn with other features.
pub fn build_target(
    root: &Path,
    profile: &str,
    selection: &[&str],
    kind: &str,
    example: &str,
) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut child = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--profile", profile])
        .args(selection)
        .args([kind, example])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start cargo")?;
    let mut exe = None;
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(path) = artifact_executable(&line?, example) {
            exe = Some(path);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("building the {example} example failed ({status})");
    }
    exe.with_context(|| format!("cargo built {example} but reported no executable"))
}

/// The executable of `example` when `line` is cargo's `compiler-artifact` message for it.
fn artifact_executable(line: &str, example: &str) -> Option<PathBuf> {
    let message = serde_json::from_str::<Value>(line).ok()?;
    if message["reason"] == "compiler-artifact" && message["target"]["name"] == example {
        message["executable"].as_str().map(PathBuf::from)
    } else {
        None
    }
}

/// The JSON object on the last line of a program's stdout that parses as JSON (`None` when there
/// is none, or when that line is JSON but not an object): both bench examples and both PyTorch
/// scripts print their results as one such line after any other output.
pub fn last_json_line(stdout: &[u8]) -> Option<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(Value::is_object)
}

/// The Python interpreter for the PyTorch reference, first found of:
///
/// 1. `option`, the command's `--python PATH` (`bench train` has one; `bench model` passes
///    `None`);
/// 2. the `RUNG_PYTHON` environment variable;
/// 3. `.venv-ref/bin/python` in the workspace root, then in its parent folder (a reference
///    virtualenv shared by several checkouts);
/// 4. `python3` from `PATH`.
///
/// The path is not checked beyond step 3: [`probe`] says whether it runs and has the modules.
pub fn python(root: &Path, option: Option<&Path>) -> PathBuf {
    choose_python(root, option, std::env::var_os("RUNG_PYTHON"))
}

/// [`python`] with the environment variable passed in, so that tests need not set it.
fn choose_python(root: &Path, option: Option<&Path>, env: Option<OsString>) -> PathBuf {
    if let Some(python) = option {
        return python.to_path_buf();
    }
    if let Some(python) = env {
        return PathBuf::from(python);
    }
    root.ancestors()
        .take(2)
        .map(|dir| dir.join(".venv-ref/bin/python"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether `python` runs and can `import IMPORTS` (e.g. `"torch, transformers"`). When not, one
/// line on stderr says why and that only rung's figures are shown: `xtask: PYTHON MISSING; …` or
/// `xtask: cannot run PYTHON (ERROR); …`, followed by `. HINT` when a hint is given.
///
/// Parameterised because the two commands need different modules and word the failure
/// differently (`bench model` gives its install hint at once, `bench train` only under its
/// table).
pub fn probe(python: &Path, imports: &str, missing: &str, hint: Option<&str>) -> bool {
    let status = Command::new(python)
        .args(["-c", &format!("import {imports}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let hint = hint.map(|h| format!(". {h}")).unwrap_or_default();
    match status {
        Ok(s) if s.success() => true,
        Ok(_) => {
            eprintln!(
                "xtask: {} {missing}; showing rung's figures only{hint}",
                python.display()
            );
            false
        }
        Err(e) => {
            eprintln!(
                "xtask: cannot run {} ({e}); showing rung's figures only{hint}",
                python.display()
            );
            false
        }
    }
}

/// A command running the PyTorch reference `script` with `python` on `threads` threads
/// (`OMP_NUM_THREADS`) and with Python's and transformers' warnings silenced; the caller adds
/// the script's own arguments.
pub fn reference_command(python: &Path, script: &Path, threads: usize) -> Command {
    let mut command = Command::new(python);
    command
        .arg(script)
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("PYTHONWARNINGS", "ignore")
        .env("TRANSFORMERS_VERBOSITY", "error");
    command
}

/// Writes `results` as pretty JSON to `path` (the commands' `--json FILE`) and says so on
/// stderr.
pub fn write_json(path: &Path, results: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(results)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

/// A table cell: `value` with `decimals` decimals, or `-` where there is none.
pub fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_is_found() {
        let out = b"noise\n{\"a\": 1}\n";
        assert_eq!(last_json_line(out).unwrap()["a"], 1);
        assert!(last_json_line(b"nothing").is_none());
        // The last JSON line wins, and it must be an object.
        let out = b"{\"a\": 1}\n{\"a\": 2}\n done\n";
        assert_eq!(last_json_line(out).unwrap()["a"], 2);
        assert!(last_json_line(b"{\"a\": 1}\n42\n").is_none());
    }

    #[test]
    fn the_example_is_read_from_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"bench_train"},"executable":"/t/release/examples/bench_train"}"#;
        assert_eq!(
            artifact_executable(line, "bench_train"),
            Some(PathBuf::from("/t/release/examples/bench_train"))
        );
        assert_eq!(artifact_executable(line, "bench_model"), None);
        let library =
            r#"{"reason":"compiler-artifact","target":{"name":"bench_train"},"executable":null}"#;
        assert_eq!(artifact_executable(library, "bench_train"), None);
        assert_eq!(
            artifact_executable("   Compiling rung", "bench_train"),
            None
        );
    }

    #[test]
    fn the_python_option_wins() {
        let root = Path::new("/nonexistent/workspace");
        assert_eq!(
            choose_python(root, Some(Path::new("/opt/py")), Some("/env/py".into())),
            PathBuf::from("/opt/py")
        );
        assert_eq!(
            choose_python(root, None, Some("/env/py".into())),
            PathBuf::from("/env/py")
        );
        assert_eq!(choose_python(root, None, None), PathBuf::from("python3"));
    }

    #[test]
    fn a_venv_ref_in_or_above_the_workspace_is_found() {
        let base = std::env::temp_dir().join(format!("xtask-bench-common-{}", std::process::id()));
        let root = base.join("workspace");
        std::fs::create_dir_all(&root).unwrap();
        let venv = base.join(".venv-ref/bin");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("python"), "").unwrap();
        assert_eq!(choose_python(&root, None, None), venv.join("python"));
        // Two levels up is too far.
        assert_eq!(
            choose_python(&root.join("sub"), None, None),
            PathBuf::from("python3")
        );
        let inner = root.join(".venv-ref/bin");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("python"), "").unwrap();
        // The workspace's own comes before its parent's.
        assert_eq!(choose_python(&root, None, None), inner.join("python"));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_python_that_does_not_run_is_no_reference() {
        let python = Path::new("/nonexistent/bin/python");
        assert!(!probe(python, "os", "lacks os", None));
        assert!(!probe(python, "os", "lacks os", Some("install it")));
    }

    #[test]
    fn cells_are_formatted() {
        assert_eq!(fmt(Some(1234.56), 1), "1234.6");
        assert_eq!(fmt(Some(2.0), 0), "2");
        assert_eq!(fmt(None, 3), "-");
    }

    #[test]
    fn zero_threads_are_refused() {
        assert_eq!(threads(Some(3)).unwrap(), 3);
        assert!(threads(Some(0)).is_err());
        assert!(threads(None).unwrap() >= 1);
    }
}
