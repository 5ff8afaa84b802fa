//! Reading episodes back, one line at a time.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::{Episode, SCHEMA_VERSION, TrajectoryError};

/// Iterates over the episodes of a JSONL stream.
///
/// Blank lines are skipped. A line that is not a valid record yields an error naming the file,
/// the line and serde's message; a record of another schema version yields
/// [`TrajectoryError::UnsupportedVersion`]. The iterator can go on after an error, so a tool
/// may report every bad line instead of only the first.
pub struct TrajectoryReader<R: BufRead = BufReader<File>> {
    input: R,
    name: String,
    line: u64,
    buffer: String,
}

impl TrajectoryReader<BufReader<File>> {
    /// Opens a trajectory file.
    pub fn open(path: &Path) -> Result<Self, TrajectoryError> {
        let file = File::open(path).map_err(|source| TrajectoryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(BufReader::new(file), path.display().to_string()))
    }
}

impl<R: BufRead> TrajectoryReader<R> {
    /// Reads from any stream; `name` appears in error messages.
    pub fn new(input: R, name: impl Into<String>) -> Self {
        Self {
            input,
            name: name.into(),
            line: 0,
            buffer: String::new(),
        }
    }

    fn parse(&self, text: &str) -> Result<Episode, TrajectoryError> {
        let malformed = |message: String| TrajectoryError::Malformed {
            path: self.name.clone(),
            line: self.line,
            message,
        };
        // The version is checked first, on its own, so that a record of another version is
        // reported as such instead of as whatever field it happens to disagree on.
        #[derive(Deserialize)]
        struct Header {
            schema_version: Option<Value>,
        }
        let header: Header = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let version = match header.schema_version {
            None => return Err(malformed("missing field `schema_version`".into())),
            Some(value) => value.as_u64().ok_or_else(|| {
                malformed(format!(
                    "schema_version must be a non-negative integer, found {value}"
                ))
            })?,
        };
        if version != u64::from(SCHEMA_VERSION) {
            return Err(TrajectoryError::UnsupportedVersion {
                path: self.name.clone(),
                line: self.line,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        serde_json::from_str(text).map_err(|e| malformed(e.to_string()))
    }
}

impl<R: BufRead> Iterator for TrajectoryReader<R> {
    type Item = Result<Episode, TrajectoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buffer) {
                Ok(0) => return None,
                Ok(_) if self.buffer.trim().is_empty() => continue,
                Ok(_) => {
                    let text = std::mem::take(&mut self.buffer);
                    let parsed = self.parse(&text);
                    self.buffer = text;
                    return Some(parsed);
                }
                Err(source) => {
                    return Some(Err(TrajectoryError::Io {
                        path: format!("{}:{}", self.name, self.line),
                        source,
                    }));
                }
            }
        }
    }
}

/// Reads a whole trajectory file, stopping at the first bad line.
pub fn read_file(path: &Path) -> Result<Vec<Episode>, TrajectoryError> {
    TrajectoryReader::open(path)?.collect()
}
