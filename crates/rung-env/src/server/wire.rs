//! The server's HTTP/1.1 wire: one request per connection, read whole under limits before a
//! worker sees it, one JSON response, then the connection is closed.
//!
//! Why not a general-purpose server crate: clients of a world server run untrusted agent code,
//! and the crate this replaced (tiny_http 0.12) let one bad request hurt every episode. It read
//! bodies on the worker threads without a deadline, so a client that announced more bytes than it
//! sent held a worker forever, and when it dropped an unread body it allocated a buffer of the
//! *announced* size, so `Content-Length: 100000000000` aborted the process. Here every byte read
//! is bounded by the head and body limits and by one deadline per request, a slow or lying client
//! only ever holds its own connection thread, and only complete requests reach the workers.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::Reply;

/// Largest request line plus headers; AppWorld's clients send a few hundred bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Longest chunk-size line of a chunked body (hex size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;

/// How long a closed connection's unread input is drained so that the client reads the answer
/// (closing a socket with unread input resets it, and the client may see the reset first).
const LINGER: Duration = Duration::from_secs(2);

/// What one request may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest body, after chunked decoding.
    pub max_body_bytes: usize,
    /// Time for the whole request (line, headers and body) to arrive.
    pub read_timeout: Duration,
}

/// A request as read from the wire.
#[derive(Debug)]
pub(super) struct Request {
    pub method: String,
    /// The target without its query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// Why no request came: the client left (nothing to answer), or it sent something to refuse.
#[derive(Debug)]
pub(super) enum Refusal {
    Gone,
    Answer(Reply),
}

impl From<Reply> for Refusal {
    fn from(reply: Reply) -> Self {
        Refusal::Answer(reply)
    }
}

/// Bytes from the socket, buffered, each read bounded by the request's deadline.
struct Source<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    timeout: Duration,
}

/// A read that did not complete.
enum Short {
    /// The client closed its side.
    Eof,
    /// The deadline passed.
    Late,
    /// Another socket error (reset, ...): the client is gone.
    Broken,
}

impl Source<'_> {
    /// Reads more bytes into the buffer; `Ok(n)` with n > 0.
    fn fill(&mut self) -> Result<usize, Short> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Short::Late);
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|_| Short::Broken)?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => Err(Short::Eof),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Ok(n)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Err(Short::Late)
                }
                Err(_) => Err(Short::Broken),
            };
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Drops consumed bytes so the buffer holds only what is still to be read.
    fn compact(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }

    /// A line ending in LF (CR LF accepted), without its ending; `None` if longer than `max`.
    fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, Short> {
        loop {
            if let Some(end) = self.buffered().iter().position(|&b| b == b'\n') {
                let mut line = self.buffered()[..end].to_vec();
                self.pos += end + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buffered().len() > max {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Appends exactly `n` bytes to `out`.
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), Short> {
        let mut left = n;
        loop {
            let have = self.buffered().len().min(left);
            out.extend_from_slice(&self.buffered()[..have]);
            self.pos += have;
            left -= have;
            if left == 0 {
                return Ok(());
            }
            self.compact();
            self.fill()?;
        }
    }
}

/// The head of a request: request line and the headers that matter here.
struct Head {
    method: String,
    target: String,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
}

/// Reads one request from `stream`.
pub(super) fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Request, Refusal> {
    let mut source = Source {
        stream,
        buf: Vec::with_capacity(4096),
        pos: 0,
        deadline: Instant::now() + limits.read_timeout,
        timeout: limits.read_timeout,
    };
    let head = read_head(&mut source)?;
    let body = read_body(&mut source, &head, limits)?;
    let path = head.target.split('?').next().unwrap_or_default().to_owned();
    Ok(Request {
        method: head.method,
        path,
        body,
    })
}

fn read_head(source: &mut Source<'_>) -> Result<Head, Refusal> {
    let late = |source: &Source<'_>| {
        Reply::detail(
            408,
            format!(
                "the request line and headers did not arrive within {:.0} s; send the whole \
                 request at once",
                source.timeout.as_secs_f64()
            ),
        )
    };
    let too_long = || {
        Reply::detail(
            431,
            format!("the request line and headers are longer than {MAX_HEAD_BYTES} bytes"),
        )
    };
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let line = match source.line(MAX_HEAD_BYTES - total) {
            Ok(Some(line)) => line,
            Ok(None) => return Err(too_long().into()),
            // Nothing at all arrived: a probe or a client that gave up; nobody to answer.
            Err(Short::Eof | Short::Broken) => return Err(Refusal::Gone),
            Err(Short::Late) => return Err(late(source).into()),
        };
        total += line.len() + 2;
        if total > MAX_HEAD_BYTES {
            return Err(too_long().into());
        }
        // Robustness (RFC 9112 §2.2): empty lines before the request line are ignored.
        if line.is_empty() && lines.is_empty() {
            continue;
        }
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let lines: Vec<String> = lines
        .into_iter()
        .map(String::from_utf8)
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Reply::detail(
                400,
                "the request line or a header is not UTF-8; send ASCII headers",
            )
        })?;
    parse_head(&lines).map_err(Refusal::Answer)
}

fn parse_head(lines: &[String]) -> Result<Head, Reply> {
    let request_line = lines.first().map(String::as_str).unwrap_or_default();
    let parts: Vec<&str> = request_line.split_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return Err(Reply::detail(
            400,
            format!(
                "malformed request line `{}`; expected `METHOD /path HTTP/1.1`",
                clip(request_line)
            ),
        ));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(Reply::detail(
            505,
            format!("{} is not supported; send HTTP/1.1", clip(version)),
        ));
    }
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) || !target.starts_with('/') {
        return Err(Reply::detail(
            400,
            format!(
                "malformed request line `{}`; expected `METHOD /path HTTP/1.1`",
                clip(request_line)
            ),
        ));
    }
    let mut head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        content_length: None,
        chunked: false,
        expect_continue: false,
    };
    let mut transfer_encoding = None;
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Reply::detail(
                400,
                format!(
                    "malformed header line `{}`; expected `Name: value`",
                    clip(line)
                ),
            ));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let length = value
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| value.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        Reply::detail(
                            400,
                            format!(
                                "invalid Content-Length `{}`; it must be the body's length in \
                                 bytes",
                                clip(value)
                            ),
                        )
                    })?;
                if head.content_length.is_some_and(|seen| seen != length) {
                    return Err(Reply::detail(
                        400,
                        "conflicting Content-Length headers; send one",
                    ));
                }
                head.content_length = Some(length);
            }
            "transfer-encoding" => transfer_encoding = Some(value.to_ascii_lowercase()),
            "expect" if value.eq_ignore_ascii_case("100-continue") => head.expect_continue = true,
            "expect" => {
                return Err(Reply::detail(
                    417,
                    format!("unsupported Expect `{}`", clip(value)),
                ));
            }
            _ => {}
        }
    }
    if let Some(encoding) = transfer_encoding {
        if head.content_length.is_some() {
            // RFC 9112 §6.1: a request with both is a smuggling attempt or a broken client.
            return Err(Reply::detail(
                400,
                "both Content-Length and Transfer-Encoding were sent; send only one",
            ));
        }
        if encoding != "chunked" {
            return Err(Reply::detail(
                501,
                format!(
                    "Transfer-Encoding `{}` is not supported; send the body with a \
                     Content-Length or as `chunked`",
                    clip(&encoding)
                ),
            ));
        }
        head.chunked = true;
    }
    Ok(head)
}

fn too_large(limit: usize) -> Reply {
    Reply::detail(
        413,
        format!(
            "request body larger than {limit} bytes (the server's max_body_bytes); send \
             shorter code cells"
        ),
    )
}

fn read_body(source: &mut Source<'_>, head: &Head, limits: &Limits) -> Result<Vec<u8>, Refusal> {
    let limit = limits.max_body_bytes;
    let seconds = limits.read_timeout.as_secs_f64();
    if head.chunked {
        if head.expect_continue {
            send_continue(source)?;
        }
        return read_chunked(source, limit, seconds);
    }
    let Some(length) = head.content_length else {
        // Neither header: HTTP says there is no body (RFC 9112 §6.3).
        return Ok(Vec::new());
    };
    let length = usize::try_from(length)
        .ok()
        .filter(|&n| n <= limit)
        .ok_or_else(|| too_large(limit))?;
    if head.expect_continue {
        send_continue(source)?;
    }
    let mut body = Vec::with_capacity(length);
    source.compact();
    match source.take(length, &mut body) {
        Ok(()) => Ok(body),
        Err(Short::Late) => Err(Reply::detail(
            408,
            format!(
                "the request body did not arrive in time: {} of the {length} bytes announced by \
                 Content-Length came within {seconds:.0} s; check the Content-Length header",
                body.len()
            ),
        )
        .into()),
        // A client that half-closed after too few bytes still reads the answer.
        Err(Short::Eof) => Err(Reply::detail(
            400,
            format!(
                "the request body ended after {} of the {length} bytes announced by \
                 Content-Length; check the Content-Length header",
                body.len()
            ),
        )
        .into()),
        Err(Short::Broken) => Err(Refusal::Gone),
    }
}

fn send_continue(source: &mut Source<'_>) -> Result<(), Refusal> {
    source
        .stream
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .map_err(|_| Refusal::Gone)
}

/// Decodes a chunked body (RFC 9112 §7.1), refusing it as soon as it outgrows `limit`.
fn read_chunked(source: &mut Source<'_>, limit: usize, seconds: f64) -> Result<Vec<u8>, Refusal> {
    let malformed = |what: &str| Reply::detail(400, format!("malformed chunked body: {what}"));
    let cut = |short: Short| match short {
        Short::Late => Refusal::Answer(Reply::detail(
            408,
            format!("the chunked request body did not end within {seconds:.0} s"),
        )),
        Short::Eof => Refusal::Answer(malformed("the connection ended before the last chunk")),
        Short::Broken => Refusal::Gone,
    };
    let mut body = Vec::new();
    loop {
        let line = source
            .line(MAX_CHUNK_LINE)
            .map_err(cut)?
            .ok_or_else(|| malformed("a chunk-size line is too long"))?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| malformed(&format!("`{}` is not a hex chunk size", clip(size))))?;
        if size == 0 {
            break;
        }
        if size > limit.saturating_sub(body.len()) {
            return Err(too_large(limit).into());
        }
        source.take(size, &mut body).map_err(cut)?;
        let end = source.line(2).map_err(cut)?;
        if end.is_none_or(|end| !end.is_empty()) {
            return Err(malformed("a chunk is longer than its size").into());
        }
    }
    // Trailer fields, ignored, up to the empty line.
    let mut trailer = 0;
    loop {
        let line = source
            .line(MAX_CHUNK_LINE)
            .map_err(cut)?
            .ok_or_else(|| malformed("a trailer line is too long"))?;
        if line.is_empty() {
            return Ok(body);
        }
        trailer += line.len();
        if trailer > MAX_HEAD_BYTES {
            return Err(malformed("the trailer is too long").into());
        }
    }
}

/// A header value or line as quoted in an error: short and printable.
fn clip(text: &str) -> String {
    const MAX: usize = 80;
    let mut clipped: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX {
        clipped.push('…');
    }
    clipped
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    }
}

/// Writes `reply` to a connection whose request was read whole, and closes it; errors mean the
/// client has gone, and nothing is left to tell it. `write_timeout` bounds a client that does not
/// read its answer.
pub(super) fn answer(stream: TcpStream, reply: &Reply, write_timeout: Duration) {
    write_and_close(stream, reply, write_timeout, false);
}

/// Writes `reply` to a connection whose request was refused before it was read whole, then
/// drains the rest for a moment (see [`linger`]).
pub(super) fn refuse(stream: TcpStream, reply: &Reply, write_timeout: Duration) {
    write_and_close(stream, reply, write_timeout, true);
}

fn write_and_close(mut stream: TcpStream, reply: &Reply, write_timeout: Duration, drain: bool) {
    let body = serde_json::to_vec(&reply.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reply.status,
        reason(reply.status),
        body.len()
    );
    if let Some(allow) = reply.allow {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.set_write_timeout(Some(write_timeout));
    let written = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&body))
        .and_then(|()| stream.flush());
    if written.is_ok() && drain {
        linger(&mut stream);
    } else {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// Half-closes the connection and discards what the client still sends (the rest of a refused
/// body) for a moment, so that the close does not reset the connection under the answer.
fn linger(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Result<Head, Reply> {
        parse_head(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn heads_parse_and_bad_ones_are_named() {
        let ok = head(&["POST /execute?x=1 HTTP/1.1", "content-length: 12"]).expect("valid");
        assert_eq!((ok.method.as_str(), ok.content_length), ("POST", Some(12)));
        let chunked = head(&["POST / HTTP/1.1", "Transfer-Encoding: Chunked"]).expect("valid");
        assert!(chunked.chunked);
        let status = |lines: &[&str]| head(lines).map(|_| 200).unwrap_or_else(|r| r.status);
        assert_eq!(status(&["GET /"]), 400);
        assert_eq!(status(&["PRI * HTTP/2.0"]), 505);
        assert_eq!(status(&["GET / HTTP/1.1", "no colon"]), 400);
        assert_eq!(status(&["POST / HTTP/1.1", "Content-Length: -1"]), 400);
        assert_eq!(status(&["POST / HTTP/1.1", "Content-Length: 1e3"]), 400);
        let both = [
            "POST / HTTP/1.1",
            "Content-Length: 3",
            "Transfer-Encoding: chunked",
        ];
        assert_eq!(status(&both), 400);
        let twice = ["POST / HTTP/1.1", "Content-Length: 3", "Content-Length: 4"];
        assert_eq!(status(&twice), 400);
        assert_eq!(status(&["POST / HTTP/1.1", "Transfer-Encoding: gzip"]), 501);
        assert_eq!(status(&["POST / HTTP/1.1", "Expect: magic"]), 417);
        // A length beyond u64 is refused as invalid, never wrapped or trusted.
        let huge = ["POST / HTTP/1.1", "Content-Length: 99999999999999999999999"];
        assert_eq!(status(&huge), 400);
    }

    #[test]
    fn clip_keeps_messages_short_and_printable() {
        assert_eq!(clip("a\u{1b}b"), "a?b");
        assert_eq!(clip(&"x".repeat(100)).chars().count(), 81);
    }
}
