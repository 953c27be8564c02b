//! An incremental HTTP/1.1 response parser for the upstream client: bytes in as they arrive from
//! the socket, the response head once it is complete, then the body's bytes with its framing
//! removed (`content-length`, `chunked`, or until the connection closes), and whether the message
//! is complete and the connection can carry another request.
//!
//! The head is parsed by `httparse` (hyper's parser); the body framing follows RFC 9112 section 6.3:
//! no body for 1xx (skipped: the next head follows), 204 and 304; `transfer-encoding` ending in
//! `chunked` is chunked, any other `transfer-encoding` reads until close; else `content-length`
//! (several different values or a bad number: an error); else until close. Trailers are read and
//! dropped. Every size is bounded (`max_head` for the head and for a chunk-size line or trailers),
//! so a hostile upstream cannot make the parser hold more than that beyond the body it returns.

use std::fmt;

/// Header lines a head may have.
const MAX_HEADERS: usize = 128;

/// Why a response cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Http1Error {
    /// The head is larger than the bound.
    HeadTooLarge,
    /// The head is not HTTP/1.x.
    BadHead(String),
    /// The framing headers contradict each other or are not numbers.
    BadFraming(&'static str),
    /// A chunk-size line or the chunked body's structure is malformed.
    BadChunk(&'static str),
    /// Bytes after a complete message (the upstream sent more than one answer).
    TrailingBytes,
    /// The connection closed before the message was complete.
    Incomplete,
}

impl fmt::Display for Http1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Http1Error::HeadTooLarge => write!(f, "the response head is too large"),
            Http1Error::BadHead(why) => write!(f, "the response head is malformed ({why})"),
            Http1Error::BadFraming(why) => write!(f, "the response framing is invalid ({why})"),
            Http1Error::BadChunk(why) => write!(f, "the chunked body is malformed ({why})"),
            Http1Error::TrailingBytes => write!(f, "the upstream sent bytes after the response"),
            Http1Error::Incomplete => write!(f, "the connection closed before the response was complete"),
        }
    }
}

impl std::error::Error for Http1Error {}

/// A response head: status, headers (names lower-cased, in order), whether the connection may be
/// reused once the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

/// The parser of one response (then `reset` for the next on the same connection).
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    buf: Vec<u8>,
    max_head: usize,
    keep_alive: bool,
}

/// What one `feed` produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// The head, if it completed during this feed.
    pub head: Option<Head>,
    /// Body bytes (framing removed) that arrived during this feed.
    pub body: Vec<u8>,
    /// Whether the message is complete.
    pub done: bool,
}

fn header_value<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> impl Iterator<Item = &'h [u8]> + 'h {
    let name = name.to_owned();
    headers
        .iter()
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v.as_slice())
}

fn tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|b| *b == b',')
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

impl ResponseParser {
    /// A parser whose head (and each chunk-size line, and the trailers) may be `max_head` bytes.
    pub fn new(max_head: usize) -> Self {
        ResponseParser {
            state: State::Head,
            buf: Vec::new(),
            max_head,
            keep_alive: false,
        }
    }

    /// Ready for the next response on the same connection.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.buf.clear();
        self.keep_alive = false;
    }

    /// Whether the message is complete.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the connection can carry another request (the message is complete and neither side
    /// asked to close).
    pub fn reusable(&self) -> bool {
        self.state == State::Done && self.keep_alive
    }

    /// Whether the head has been read.
    pub fn has_head(&self) -> bool {
        self.state != State::Head
    }

    /// The connection closed: completes a body read until close; any other unfinished message is
    /// `Incomplete`.
    pub fn eof(&mut self) -> Result<(), Http1Error> {
        match self.state {
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Done => Ok(()),
            _ => Err(Http1Error::Incomplete),
        }
    }

    /// Feed the bytes that arrived.
    pub fn feed(&mut self, data: &[u8]) -> Result<Fed, Http1Error> {
        let mut out = Fed::default();
        let mut data = data;
        // Bytes held from an earlier feed (a partial head or chunk line) go first.
        let joined;
        if !self.buf.is_empty() {
            self.buf.extend_from_slice(data);
            joined = std::mem::take(&mut self.buf);
            data = &joined;
        }
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            match self.state {
                State::Head => match self.head(rest)? {
                    Some((used, head)) => {
                        at += used;
                        if let Some(head) = head {
                            out.head = Some(head);
                        }
                    }
                    None => {
                        if rest.len() > self.max_head {
                            return Err(Http1Error::HeadTooLarge);
                        }
                        self.buf.extend_from_slice(rest);
                        return Ok(self.finish(out));
                    }
                },
                State::Length(left) => {
                    let take = (rest.len() as u64).min(left) as usize;
                    out.body.extend_from_slice(&rest[..take]);
                    at += take;
                    self.state = if left == take as u64 {
                        State::Done
                    } else {
                        State::Length(left - take as u64)
                    };
                }
                State::UntilClose => {
                    out.body.extend_from_slice(rest);
                    at = data.len();
                }
                State::ChunkSize => match memchr::memchr(b'\n', rest) {
                    Some(nl) => {
                        let size = chunk_size(&rest[..nl])?;
                        at += nl + 1;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    None => return self.hold(rest, out),
                },
                State::ChunkData(left) => {
                    let take = (rest.len() as u64).min(left) as usize;
                    out.body.extend_from_slice(&rest[..take]);
                    at += take;
                    self.state = if left == take as u64 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left - take as u64)
                    };
                }
                State::ChunkDataEnd => {
                    // CRLF (or a bare LF) after a chunk's data.
                    if rest[0] == b'\n' {
                        at += 1;
                        self.state = State::ChunkSize;
                    } else if rest[0] == b'\r' {
                        if rest.len() < 2 {
                            return self.hold(rest, out);
                        }
                        if rest[1] != b'\n' {
                            return Err(Http1Error::BadChunk("no line end after a chunk"));
                        }
                        at += 2;
                        self.state = State::ChunkSize;
                    } else {
                        return Err(Http1Error::BadChunk("no line end after a chunk"));
                    }
                }
                State::Trailers => match memchr::memchr(b'\n', rest) {
                    Some(nl) => {
                        let line = &rest[..nl];
                        at += nl + 1;
                        if line.is_empty() || line == b"\r" {
                            self.state = State::Done;
                        }
                    }
                    None => return self.hold(rest, out),
                },
                State::Done => return Err(Http1Error::TrailingBytes),
            }
        }
        Ok(self.finish(out))
    }

    fn finish(&self, mut out: Fed) -> Fed {
        out.done = self.state == State::Done;
        out
    }

    /// Keep a partial line for the next feed (bounded).
    fn hold(&mut self, rest: &[u8], out: Fed) -> Result<Fed, Http1Error> {
        if rest.len() > self.max_head {
            return Err(Http1Error::BadChunk("a line is too long"));
        }
        self.buf.extend_from_slice(rest);
        Ok(self.finish(out))
    }

    /// Parse a head at the start of `data`: None when incomplete; else the bytes it used and the
    /// head (None for a 1xx head, which is skipped).
    #[allow(clippy::type_complexity)]
    fn head(&mut self, data: &[u8]) -> Result<Option<(usize, Option<Head>)>, Http1Error> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        let used = match resp.parse(data) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Http1Error::HeadTooLarge),
            Err(e) => return Err(Http1Error::BadHead(e.to_string())),
        };
        if used > self.max_head {
            return Err(Http1Error::HeadTooLarge);
        }
        let status = resp.code.unwrap_or(0);
        let version = resp.version.unwrap_or(1);
        let headers: Vec<(String, Vec<u8>)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        if (100..200).contains(&status) {
            return Ok(Some((used, None))); // informational: the real head follows
        }
        let mut close = version == 0;
        for value in header_value(&headers, "connection") {
            for token in tokens(value) {
                if token == "close" {
                    close = true;
                } else if token == "keep-alive" && version == 0 {
                    close = false;
                }
            }
        }
        let no_body = status == 204 || status == 304;
        let mut state = State::UntilClose;
        let te: Vec<String> = header_value(&headers, "transfer-encoding").flat_map(tokens).collect();
        if no_body {
            state = State::Done;
        } else if !te.is_empty() {
            if te.last().map(String::as_str) == Some("chunked") {
                state = State::ChunkSize;
            }
        } else {
            let mut length: Option<u64> = None;
            for value in header_value(&headers, "content-length") {
                for part in value.split(|b| *b == b',') {
                    let text = std::str::from_utf8(part)
                        .map_err(|_| Http1Error::BadFraming("content-length"))?
                        .trim();
                    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Http1Error::BadFraming("content-length is not a number"));
                    }
                    let n: u64 = text
                        .parse()
                        .map_err(|_| Http1Error::BadFraming("content-length is too large"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Http1Error::BadFraming("two different content-lengths"));
                    }
                    length = Some(n);
                }
            }
            if let Some(n) = length {
                state = if n == 0 { State::Done } else { State::Length(n) };
            }
        }
        self.keep_alive = !close && state != State::UntilClose;
        self.state = state;
        Ok(Some((
            used,
            Some(Head {
                status,
                headers,
                keep_alive: self.keep_alive,
            }),
        )))
    }
}

/// A chunk-size line (without its LF): hex digits, optional extensions after `;`, optional CR.
fn chunk_size(line: &[u8]) -> Result<u64, Http1Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = match memchr::memchr(b';', line) {
        Some(semi) => &line[..semi],
        None => line,
    };
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(Http1Error::BadChunk("bad chunk size"));
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = (b as char).to_digit(16).ok_or(Http1Error::BadChunk("bad chunk size"))?;
        n = n * 16 + d as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_at_once(data: &[u8]) -> (Head, Vec<u8>, bool) {
        let mut p = ResponseParser::new(8192);
        let fed = p.feed(data).unwrap();
        (fed.head.unwrap(), fed.body, fed.done)
    }

    /// Feeding the bytes in every split gives the same head, body and completion.
    fn every_split(data: &[u8]) -> (Head, Vec<u8>, bool) {
        let whole = all_at_once(data);
        for cut in 0..=data.len() {
            for cut2 in cut..=data.len() {
                let mut p = ResponseParser::new(8192);
                let mut head = None;
                let mut body = Vec::new();
                let mut done = false;
                for piece in [&data[..cut], &data[cut..cut2], &data[cut2..]] {
                    let fed = p.feed(piece).unwrap();
                    head = head.or(fed.head);
                    body.extend(fed.body);
                    done = fed.done;
                }
                assert_eq!((head.unwrap(), body, done), whole.clone(), "split at {cut},{cut2}");
            }
        }
        whole
    }

    #[test]
    fn content_length_body() {
        let (head, body, done) =
            every_split(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(head.status, 200);
        assert_eq!(
            head.headers[0],
            ("content-type".to_string(), b"application/json".to_vec())
        );
        assert!(head.keep_alive && done);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        let (head, body, done) = every_split(data);
        assert!(head.keep_alive && done);
        assert_eq!(body, b"hello, world");
    }

    #[test]
    fn until_close_and_connection_close() {
        let mut p = ResponseParser::new(8192);
        let fed = p.feed(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap();
        assert!(!fed.done && !fed.head.unwrap().keep_alive);
        assert_eq!(p.feed(b"def").unwrap().body, b"def");
        p.eof().unwrap();
        assert!(p.done() && !p.reusable());
        let (head, _, _) = all_at_once(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!head.keep_alive);
        let (head, _, _) = all_at_once(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!head.keep_alive);
    }

    #[test]
    fn informational_heads_are_skipped_and_no_body_statuses_end_at_the_head() {
        let (head, body, done) =
            every_split(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((head.status, body.len(), done), (204, 0, true));
    }

    #[test]
    fn errors() {
        let mut p = ResponseParser::new(8192);
        assert!(matches!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Http1Error::BadFraming(_))
        ));
        let mut p = ResponseParser::new(8192);
        assert!(matches!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(Http1Error::BadFraming(_))
        ));
        let mut p = ResponseParser::new(8192);
        assert!(matches!(
            p.feed(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Http1Error::BadHead(_))
        ));
        let mut p = ResponseParser::new(64);
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(p.feed(&long), Err(Http1Error::HeadTooLarge));
        let mut p = ResponseParser::new(8192);
        assert!(matches!(
            p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(Http1Error::BadChunk(_))
        ));
        let mut p = ResponseParser::new(8192);
        assert!(matches!(
            p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naX"),
            Err(Http1Error::BadChunk(_))
        ));
        let mut p = ResponseParser::new(8192);
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"),
            Err(Http1Error::TrailingBytes)
        );
        let mut p = ResponseParser::new(8192);
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na").unwrap();
        assert_eq!(p.eof(), Err(Http1Error::Incomplete));
        let mut p = ResponseParser::new(48);
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_ok());
        assert!(matches!(p.feed(&[b'1'; 60]), Err(Http1Error::BadChunk(_))));
    }

    #[test]
    fn reset_reads_the_next_response() {
        let mut p = ResponseParser::new(8192);
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap().done);
        assert!(p.reusable());
        p.reset();
        let fed = p.feed(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((fed.head.unwrap().status, fed.done), (500, true));
    }
}
