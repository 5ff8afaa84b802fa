//! `cargo xtask appworld`: the real AppWorld engine from PyPI, in its own virtualenv.
//!
//! AppWorld 0.1.3.post1 pins pydantic 1.x and a dozen other packages, so it lives in an
//! isolated virtualenv under a cache folder rather than in whatever Python the user has:
//!
//! - `setup` creates `<dir>/venv` (Python ≥ 3.11), installs `appworld==0.1.3.post1` and runs
//!   `appworld install` (it unpacks the apps' code; its tests go to `<dir>/appworld-cache`, not
//!   `~/.appworld`). A stamp file makes a second run a no-op.
//! - `synth` runs `xtask/appworld/make_synthetic.py` in that virtualenv: an AppWorld data folder
//!   with synthetic tasks and rung's gold file (AppWorld's own data cannot be downloaded here).
//! - `serve` runs `xtask/appworld/serve.py`: AppWorld's environment server on 127.0.0.1 (the
//!   `appworld serve environment` CLI binds 0.0.0.0).
//! - `env` prints the paths as shell assignments, for scripts (`eval "$(cargo xtask appworld
//!   env)"`).
//!
//! `<dir>` is `--dir`, else `$RUNG_APPWORLD_DIR`, else `$XDG_CACHE_HOME/rung/appworld`, else
//! `~/.cache/rung/appworld`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// The AppWorld release rung's client, generator and server script are written for.
pub const APPWORLD_VERSION: &str = "0.1.3.post1";

/// The oldest Python AppWorld supports.
const MIN_PYTHON: (u32, u32) = (3, 11);

/// Python interpreters tried, in order, when none is given.
const PYTHON_CANDIDATES: [&str; 5] = [
    "python3.13",
    "python3.12",
    "python3.11",
    "python3",
    "python",
];

/// The real AppWorld engine (from PyPI) in an isolated virtualenv.
#[derive(Debug, Subcommand)]
pub enum AppworldTask {
    /// Create the virtualenv, install appworld==0.1.3.post1 and run `appworld install`.
    ///
    /// Idempotent: a stamp file in the virtualenv records a finished setup, and a second run
    /// only checks that the package still imports.
    Setup {
        #[command(flatten)]
        dir: DirArgs,
        /// Python (≥ 3.11) to create the virtualenv with; default: $RUNG_APPWORLD_BASE_PYTHON,
        /// else the first of python3.13, python3.12, python3.11, python3, python on PATH that
        /// is recent enough.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Recreate the virtualenv from scratch.
        #[arg(long)]
        force: bool,
    },
    /// Write the synthetic AppWorld data folder and rung's gold file (needs `setup`).
    ///
    /// Runs xtask/appworld/make_synthetic.py: base databases for every app, API docs, 24
    /// validated tasks (8 scenarios of 3 variants over 5 apps) with ground truth, split files
    /// and `<root>/gold.json`. Skipped when the folder was built by the same script.
    Synth {
        #[command(flatten)]
        dir: DirArgs,
        /// Folder to write (it gets data/ inside); default: <dir>/synthetic.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Rebuild even if the folder is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Serve AppWorld's environment server on 127.0.0.1 (needs `setup`).
    ///
    /// Runs xtask/appworld/serve.py, the released server's FastAPI app under uvicorn, bound to
    /// loopback; the same endpoints as `appworld serve environment --port P`.
    Serve {
        #[command(flatten)]
        dir: DirArgs,
        /// Port to listen on.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// The folder that contains data/; default: <dir>/synthetic.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Experiment name of episodes whose /initialize names none.
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Print the virtualenv's Python, the serve and generator scripts and the synthetic data
    /// paths as shell assignments (`eval "$(cargo xtask appworld env)"`).
    Env {
        #[command(flatten)]
        dir: DirArgs,
    },
}

/// Where the virtualenv and the synthetic data live.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Cache folder; default: $RUNG_APPWORLD_DIR, else $XDG_CACHE_HOME/rung/appworld, else
    /// ~/.cache/rung/appworld.
    #[arg(long = "dir", value_name = "DIR")]
    path: Option<PathBuf>,
}

impl DirArgs {
    fn resolve(&self) -> Result<Layout> {
        let dir = match &self.path {
            Some(dir) => dir.clone(),
            None => default_dir(
                std::env::var_os("RUNG_APPWORLD_DIR"),
                std::env::var_os("XDG_CACHE_HOME"),
                std::env::var_os("HOME"),
            )?,
        };
        Ok(Layout::new(absolute(&dir)?))
    }
}

/// The cache folder's default: `$RUNG_APPWORLD_DIR`, `$XDG_CACHE_HOME/rung/appworld` or
/// `$HOME/.cache/rung/appworld` (empty variables count as unset, as the XDG spec says).
fn default_dir(
    explicit: Option<OsString>,
    xdg_cache: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(explicit) {
        return Ok(dir);
    }
    if let Some(cache) = set(xdg_cache) {
        return Ok(cache.join("rung").join("appworld"));
    }
    match set(home) {
        Some(home) => Ok(home.join(".cache").join("rung").join("appworld")),
        None => bail!("neither HOME nor XDG_CACHE_HOME is set: pass --dir DIR"),
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current folder")?
        .join(path))
}

/// Paths under the cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn venv(&self) -> PathBuf {
        self.dir.join("venv")
    }

    /// The virtualenv's interpreter.
    fn python(&self) -> PathBuf {
        if cfg!(windows) {
            self.venv().join("Scripts").join("python.exe")
        } else {
            self.venv().join("bin").join("python")
        }
    }

    fn appworld_cli(&self) -> PathBuf {
        if cfg!(windows) {
            self.venv().join("Scripts").join("appworld.exe")
        } else {
            self.venv().join("bin").join("appworld")
        }
    }

    fn stamp(&self) -> PathBuf {
        self.venv().join("rung-setup.stamp")
    }

    /// `APPWORLD_CACHE` during `appworld install`: it unpacks its tests there instead of
    /// `~/.appworld`, keeping the setup inside the cache folder.
    fn appworld_cache(&self) -> PathBuf {
        self.dir.join("appworld-cache")
    }

    fn synthetic(&self) -> PathBuf {
        self.dir.join("synthetic")
    }
}

/// What a finished setup writes into its stamp file.
fn stamp_text(python_version: &str) -> String {
    format!("appworld=={APPWORLD_VERSION}\npython {python_version}\n")
}

pub fn run(root: &Path, task: AppworldTask) -> Result<ExitCode> {
    match task {
        AppworldTask::Setup { dir, python, force } => {
            let python = python.or_else(|| {
                std::env::var_os("RUNG_APPWORLD_BASE_PYTHON")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            });
            setup(&dir.resolve()?, python.as_deref(), force)?;
            Ok(ExitCode::SUCCESS)
        }
        AppworldTask::Synth {
            dir,
            root: data_root,
            force,
        } => {
            let (python, data_root) = python_and_root(&dir, data_root)?;
            let mut command = Command::new(&python);
            command
                .arg(script(root, "make_synthetic.py"))
                .arg("--root")
                .arg(&data_root)
                // AppWorld's JWT library warns about its short demo key on every login.
                .env("PYTHONWARNINGS", "ignore");
            if force {
                command.arg("--force");
            }
            status(command, "building the synthetic AppWorld data")
        }
        AppworldTask::Serve {
            dir,
            port,
            root: data_root,
            experiment,
        } => {
            let (python, data_root) = python_and_root(&dir, data_root)?;
            let mut command = Command::new(&python);
            command
                .arg(script(root, "serve.py"))
                .args(["--port", &port.to_string(), "--root"])
                .arg(&data_root)
                .env("PYTHONWARNINGS", "ignore");
            if let Some(experiment) = experiment {
                command.args(["--experiment", &experiment]);
            }
            eprintln!(
                "serving AppWorld on http://127.0.0.1:{port} (data root {})",
                data_root.display()
            );
            status(command, "serving AppWorld")
        }
        AppworldTask::Env { dir } => {
            let layout = dir.resolve()?;
            print!("{}", env_lines(root, &layout));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A script of `xtask/appworld/`.
fn script(root: &Path, name: &str) -> PathBuf {
    root.join("xtask").join("appworld").join(name)
}

/// The virtualenv's Python (after a finished setup) and the data root: `--root`, else the
/// synthetic folder of the cache.
fn python_and_root(dir: &DirArgs, data_root: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    let layout = dir.resolve()?;
    let python = ready_python(&layout)?;
    let data_root = match data_root {
        Some(path) => absolute(&path)?,
        None => layout.synthetic(),
    };
    Ok((python, data_root))
}

/// Exported shell assignments of the paths scripts and `rung` need, single-quoted: exported,
/// so that `eval "$(cargo xtask appworld env)"` reaches child processes such as `rung
/// experiment`, whose configs name `${RUNG_APPWORLD_ROOT}` and friends.
fn env_lines(root: &Path, layout: &Layout) -> String {
    let synthetic = layout.synthetic();
    let pairs = [
        ("RUNG_APPWORLD_DIR", layout.dir.clone()),
        ("RUNG_APPWORLD_PYTHON", layout.python()),
        ("RUNG_APPWORLD_SERVE", script(root, "serve.py")),
        ("RUNG_APPWORLD_SYNTH", script(root, "make_synthetic.py")),
        ("RUNG_APPWORLD_ROOT", synthetic.clone()),
        ("RUNG_APPWORLD_GOLD", synthetic.join("gold.json")),
    ];
    pairs
        .iter()
        .map(|(name, path)| format!("export {name}={}\n", shell_quote(&path.to_string_lossy())))
        .collect()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The virtualenv's Python after a finished setup, or an error that says to run it.
fn ready_python(layout: &Layout) -> Result<PathBuf> {
    let python = layout.python();
    if !python.is_file() || !layout.stamp().is_file() {
        bail!(
            "the AppWorld virtualenv {} is missing or its setup did not finish: run `cargo \
             xtask appworld setup` first",
            layout.venv().display()
        );
    }
    Ok(python)
}

fn setup(layout: &Layout, python: Option<&Path>, force: bool) -> Result<()> {
    let venv = layout.venv();
    if force && venv.exists() {
        fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove the virtualenv {}", venv.display()))?;
    }
    if layout.stamp().is_file() && layout.python().is_file() {
        if imports_appworld(&layout.python()) {
            println!(
                "AppWorld {APPWORLD_VERSION} is set up in {} (delete it or pass --force to \
                 redo it)",
                venv.display()
            );
            return Ok(());
        }
        eprintln!(
            "the virtualenv {} no longer imports appworld: setting it up again",
            venv.display()
        );
        fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove the virtualenv {}", venv.display()))?;
    }

    let (base, version) = find_python(python)?;
    println!(
        "creating the virtualenv {} with {} (Python {version})",
        venv.display(),
        base.display()
    );
    fs::create_dir_all(&layout.dir)
        .with_context(|| format!("cannot create {}", layout.dir.display()))?;
    let created = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .with_context(|| format!("cannot run {}", base.display()))?;
    if !created.status.success() {
        let stderr = String::from_utf8_lossy(&created.stderr);
        let hint = if stderr.contains("ensurepip") || stderr.contains("venv") {
            " (on Debian and Ubuntu: apt-get install python3-venv, or the python3.X-venv of \
             your version)"
        } else {
            ""
        };
        bail!(
            "`{} -m venv {}` failed{hint}:\n{}",
            base.display(),
            venv.display(),
            stderr.trim()
        );
    }
    let python = layout.python();
    if !Command::new(&python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        bail!(
            "the new virtualenv {} has no pip; install pip for {} (Debian and Ubuntu: apt-get \
             install python3-pip python3-venv) and run setup again with --force",
            venv.display(),
            base.display()
        );
    }

    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        &format!("appworld=={APPWORLD_VERSION}"),
    ]);
    let code = status(pip, "installing appworld from PyPI")?;
    if code != ExitCode::SUCCESS {
        bail!(
            "pip could not install appworld=={APPWORLD_VERSION} (see its output above); it \
             needs PyPI (or a mirror configured for pip) to be reachable"
        );
    }

    let mut install = Command::new(layout.appworld_cli());
    install
        .arg("install")
        .env("APPWORLD_CACHE", layout.appworld_cache());
    let code = status(install, "unpacking AppWorld's apps (`appworld install`)")?;
    if code != ExitCode::SUCCESS {
        bail!("`appworld install` failed (see its output above)");
    }
    if !imports_appworld(&python) {
        bail!(
            "appworld was installed but its apps do not import (`{} -c 'import \
             appworld.apps.simple_note.models'` fails); run setup again with --force",
            python.display()
        );
    }
    fs::write(layout.stamp(), stamp_text(&version))
        .with_context(|| format!("cannot write {}", layout.stamp().display()))?;
    println!(
        "AppWorld {APPWORLD_VERSION} is set up: {}\nnext: cargo xtask appworld synth",
        python.display()
    );
    Ok(())
}

/// Whether the apps' unpacked code imports (it only exists after `appworld install`).
fn imports_appworld(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-W",
            "ignore",
            "-c",
            "import appworld.apps.simple_note.models",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The given Python, or the first recent enough candidate on PATH, with its version.
fn find_python(given: Option<&Path>) -> Result<(PathBuf, String)> {
    let need = format!("{}.{}", MIN_PYTHON.0, MIN_PYTHON.1);
    if let Some(python) = given {
        return match python_version(python) {
            Some((version, parsed)) if parsed >= MIN_PYTHON => Ok((python.to_path_buf(), version)),
            Some((version, _)) => bail!(
                "{} is Python {version}; AppWorld needs Python {need} or newer",
                python.display()
            ),
            None => bail!("{} does not run as a Python interpreter", python.display()),
        };
    }
    let mut seen = Vec::new();
    for candidate in PYTHON_CANDIDATES {
        if let Some((version, parsed)) = python_version(Path::new(candidate)) {
            if parsed >= MIN_PYTHON {
                return Ok((PathBuf::from(candidate), version));
            }
            seen.push(format!("{candidate} is {version}"));
        }
    }
    let found = if seen.is_empty() {
        "no Python interpreter is on PATH".to_owned()
    } else {
        seen.join(", ")
    };
    bail!(
        "AppWorld needs Python {need} or newer, and {found}; install one (e.g. apt-get install \
         python3.11 python3.11-venv, or pyenv install 3.11) and pass --python PATH if it is not \
         on PATH"
    )
}

/// `X.Y.Z` and `(X, Y)` of a Python interpreter, if it runs.
fn python_version(python: &Path) -> Option<(String, (u32, u32))> {
    let output = Command::new(python)
        .args([
            "-c",
            "import sys; print('.'.join(map(str, sys.version_info[:3])))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let parsed = parse_version(&version)?;
    Some((version, parsed))
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Runs a command with inherited output and passes its exit code on.
fn status(mut command: Command, what: &str) -> Result<ExitCode> {
    let line = crate::describe(&command);
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start `{line}`"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => {
            eprintln!("xtask: {what} failed: `{line}` exited with status {code}");
            ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))
        }
        None => {
            eprintln!("xtask: {what} failed: `{line}` was ended by a signal ({status})");
            ExitCode::FAILURE
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_folder_follows_the_environment() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_dir(os("/x"), os("/c"), os("/h")).unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(
            default_dir(None, os("/c"), os("/h")).unwrap(),
            PathBuf::from("/c/rung/appworld")
        );
        assert_eq!(
            default_dir(os(""), os(""), os("/h")).unwrap(),
            PathBuf::from("/h/.cache/rung/appworld")
        );
        assert!(default_dir(None, None, None).is_err());
    }

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("3.11.7"), Some((3, 11)));
        assert_eq!(parse_version("3.9"), Some((3, 9)));
        assert!(parse_version("3.9").unwrap() < MIN_PYTHON);
        assert!(parse_version("3.12.1").unwrap() >= MIN_PYTHON);
        assert_eq!(parse_version("junk"), None);
    }

    #[test]
    fn env_lines_are_quoted_shell_assignments() {
        let layout = Layout::new(PathBuf::from("/cache/it's"));
        let text = env_lines(Path::new("/repo"), &layout);
        assert!(
            text.contains("export RUNG_APPWORLD_PYTHON='/cache/it'\\''s/venv/bin/python'\n"),
            "{text}"
        );
        assert!(text.contains("export RUNG_APPWORLD_GOLD='/cache/it'\\''s/synthetic/gold.json'\n"));
        assert!(text.contains("export RUNG_APPWORLD_SERVE='/repo/xtask/appworld/serve.py'\n"));
    }

    #[test]
    fn a_missing_setup_is_explained() {
        let layout = Layout::new(std::env::temp_dir().join("rung-xtask-no-such-appworld-dir"));
        let err = ready_python(&layout).unwrap_err().to_string();
        assert!(err.contains("cargo xtask appworld setup"), "{err}");
    }

    #[test]
    fn a_python_that_is_not_one_is_refused() {
        let err = find_python(Some(Path::new("/nonexistent/python")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not run as a Python interpreter"),
            "{err}"
        );
    }
}
