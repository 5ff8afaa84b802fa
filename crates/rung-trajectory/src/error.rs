//! Errors of reading and writing trajectory files.

/// Why a trajectory file could not be read or written. Every variant names the file (or stream)
/// and, for record errors, the 1-based line, so a bad record can be found with `sed -n Np`.
#[derive(Debug, thiserror::Error)]
pub enum TrajectoryError {
    /// Opening, reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (or stream name).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid episode record.
    #[error("{path}:{line}: malformed trajectory record: {message}")]
    Malformed {
        /// The file (or stream name).
        path: String,
        /// 1-based line number.
        line: u64,
        /// The parser's message (serde's, with the column).
        message: String,
    },
    /// A record carries a schema version this build does not read or write.
    #[error(
        "{path}:{line}: trajectory schema_version {found} is not supported: this build reads and \
         writes version {supported}; regenerate the file or use a matching build of rung"
    )]
    UnsupportedVersion {
        /// The file (or stream name).
        path: String,
        /// 1-based line number (for a write, the line it would have had).
        line: u64,
        /// The version found.
        found: u64,
        /// The version this build supports.
        supported: u32,
    },
}
