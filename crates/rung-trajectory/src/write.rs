//! Writing episodes: a line at a time to a stream, or a whole file atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Episode, SCHEMA_VERSION, TrajectoryError};

/// Appends episodes as JSON lines.
///
/// Lines are buffered; call [`flush`](Self::flush) at points where a crash must not lose what
/// was written (a long generation run flushes after every episode).
pub struct TrajectoryWriter<W: Write = BufWriter<File>> {
    out: W,
    name: String,
    lines: u64,
}

impl TrajectoryWriter<BufWriter<File>> {
    /// Opens `path` for appending, creating it (and its parent folders) if needed, so an
    /// interrupted run can be resumed by appending to what it left.
    pub fn append(path: &Path) -> Result<Self, TrajectoryError> {
        let io = |source| TrajectoryError::Io {
            path: path.display().to_string(),
            source,
        };
        create_parent(path).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self::new(BufWriter::new(file), path.display().to_string()))
    }
}

impl<W: Write> TrajectoryWriter<W> {
    /// Writes to any stream; `name` appears in error messages.
    pub fn new(out: W, name: impl Into<String>) -> Self {
        Self {
            out,
            name: name.into(),
            lines: 0,
        }
    }

    /// Writes one episode as one line. Refuses an episode of another schema version, so that
    /// no file this build writes is one it cannot read back.
    pub fn write(&mut self, episode: &Episode) -> Result<(), TrajectoryError> {
        if episode.schema_version != SCHEMA_VERSION {
            return Err(TrajectoryError::UnsupportedVersion {
                path: self.name.clone(),
                line: self.lines + 1,
                found: u64::from(episode.schema_version),
                supported: SCHEMA_VERSION,
            });
        }
        // Compact JSON escapes newlines inside strings, so one record is exactly one line.
        let line = serde_json::to_string(episode).map_err(|e| TrajectoryError::Malformed {
            path: self.name.clone(),
            line: self.lines + 1,
            message: e.to_string(),
        })?;
        let io = |source| TrajectoryError::Io {
            path: self.name.clone(),
            source,
        };
        self.out.write_all(line.as_bytes()).map_err(io)?;
        self.out.write_all(b"\n").map_err(io)?;
        self.lines += 1;
        Ok(())
    }

    /// Pushes buffered lines to the underlying stream.
    pub fn flush(&mut self) -> Result<(), TrajectoryError> {
        self.out.flush().map_err(|source| TrajectoryError::Io {
            path: self.name.clone(),
            source,
        })
    }

    /// Number of episodes written by this writer.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flushes and returns the stream.
    pub fn into_inner(mut self) -> Result<W, TrajectoryError> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Writes `episodes` as the whole content of `path`, atomically: the lines go to a temporary
/// file in the same folder, which is synced and then renamed over `path`. A reader never sees
/// a half-written file, and a failed write leaves any previous file untouched.
pub fn write_file<'a>(
    path: &Path,
    episodes: impl IntoIterator<Item = &'a Episode>,
) -> Result<(), TrajectoryError> {
    let io = |source| TrajectoryError::Io {
        path: path.display().to_string(),
        source,
    };
    create_parent(path).map_err(io)?;
    let temp = temp_path(path);
    let result = (|| {
        let file = File::create(&temp).map_err(io)?;
        let mut writer = TrajectoryWriter::new(BufWriter::new(file), path.display().to_string());
        for episode in episodes {
            writer.write(episode)?;
        }
        let file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, path).map_err(io)
    })();
    if result.is_err() {
        // Best effort: the temporary file is garbage either way, and the write error is the
        // one worth reporting.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// A temporary name next to `path`, unique within this process and across processes.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trajectories".into());
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}
