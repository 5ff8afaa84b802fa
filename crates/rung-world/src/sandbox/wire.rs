//! The pipe protocol between a sandbox and its worker process: one JSON object per line, the
//! sandbox writing to the worker's stdin and reading its stdout.
//!
//! The worker is untrusted (it runs agent code), so the sandbox reads its lines with a size cap:
//! a worker that sends more than the limits allow is treated as dead, never buffered.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Isolation, Limits};

/// The environment variable that makes a process a sandbox worker; its value is the limits.
pub(super) const WORKER_ENV: &str = "RUNG_SANDBOX_WORKER";

/// [`Limits`] as the worker receives them.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireLimits {
    max_ticks: u64,
    max_time_ms: u64,
    max_output: usize,
    max_api_calls: u32,
    max_heap: usize,
    max_api_argument_bytes: usize,
    max_episode_argument_bytes: usize,
}

impl From<Limits> for WireLimits {
    fn from(l: Limits) -> Self {
        Self {
            max_ticks: l.max_ticks,
            max_time_ms: u64::try_from(l.max_time.as_millis()).unwrap_or(u64::MAX),
            max_output: l.max_output,
            max_api_calls: l.max_api_calls,
            max_heap: l.max_heap,
            max_api_argument_bytes: l.max_api_argument_bytes,
            max_episode_argument_bytes: l.max_episode_argument_bytes,
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(l: WireLimits) -> Self {
        Self {
            max_ticks: l.max_ticks,
            max_time: Duration::from_millis(l.max_time_ms),
            max_output: l.max_output,
            max_api_calls: l.max_api_calls,
            max_heap: l.max_heap,
            max_api_argument_bytes: l.max_api_argument_bytes,
            max_episode_argument_bytes: l.max_episode_argument_bytes,
            isolation: Isolation::Thread,
        }
    }
}

/// An API error on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct WireApiError {
    pub status: u16,
    pub message: String,
}

/// What the sandbox sends its worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ToWorker {
    /// Run a cell in the episode's namespace.
    Cell { code: String },
    /// The answer to the worker's last [`FromWorker::Call`].
    Answer { result: Result<Json, WireApiError> },
    /// Drop the namespace and wait for the next episode (the worker answers `Ready`).
    Reset,
}

/// What a worker sends its sandbox.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum FromWorker {
    /// Started (limits applied) or reset: an empty namespace waiting for cells.
    Ready,
    /// The running cell calls an API; the worker waits for the [`ToWorker::Answer`].
    Call {
        app: String,
        api: String,
        positional: Vec<Json>,
        named: Vec<(String, Json)>,
    },
    /// The cell finished with this output.
    Output { text: String },
}

/// Writes one message as a line and flushes it.
pub(super) fn send(out: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Reads one line of at most `max` bytes (without its newline). `Ok(None)` at the end of the
/// stream; an error if the line is longer than `max` or not UTF-8.
pub(super) fn read_line(input: &mut impl BufRead, max: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a message",
                ))
            };
        }
        let (take, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message is longer than {max} bytes"),
            ));
        }
        line.extend_from_slice(&buffer[..take]);
        input.consume(take);
        if done {
            line.pop();
            return String::from_utf8(line)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_split() {
        let mut input = io::Cursor::new(b"{\"a\":1}\nsecond\n".to_vec());
        assert_eq!(
            read_line(&mut input, 7).unwrap().as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(read_line(&mut input, 7).unwrap().as_deref(), Some("second"));
        assert!(read_line(&mut input, 7).unwrap().is_none());
        let mut long = io::Cursor::new(vec![b'x'; 100]);
        let err = read_line(&mut long, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut cut = io::Cursor::new(b"partial".to_vec());
        assert_eq!(
            read_line(&mut cut, 100).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn limits_survive_the_wire() {
        let limits = Limits {
            max_time: Duration::from_millis(1500),
            max_heap: 12345,
            ..Limits::default()
        };
        let json = serde_json::to_string(&WireLimits::from(limits)).unwrap();
        let back: Limits = serde_json::from_str::<WireLimits>(&json).unwrap().into();
        assert_eq!(back, limits.in_thread());
    }
}
