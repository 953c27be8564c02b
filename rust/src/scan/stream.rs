//! Stream scanning: redact text that arrives in chunks, holding back only what is undecided.
//!
//! The stream keeps the original text it has not emitted yet and a normalized view of it, with
//! [`Detectors::context_len`] bytes of already-emitted text before it for look-behind. Each
//! `feed` runs one detector round over the view from the last emit point. The round reports the
//! lowest start whose answer still needs more text; every candidate below it is final, so the
//! greedy resolution of those candidates is what the whole text would give, and the text up to
//! that point (or to the end of the last finding, if that reaches further) is emitted with its
//! placeholders. What is held back is bounded by the longest candidate a detector can build
//! ([`crate::scan::Scanner::max_holdback`]).
//!
//! An *open* finding (a PEM block or JWT past its cap, see `secrets.rs`) emits its placeholder
//! at once; the stream then swallows the rest of its run as it arrives and reports the finding
//! when the run ends, so nothing of it leaks and nothing is held.
//!
//! Findings carry offsets into the whole stream's original text, in bytes and in characters.

use super::custom::CustomState;
use super::detectors::{is, Cand, JWTRUN, PEMBODY};
use super::entity::{Builtin, EntityId};
use super::error::ScanError;
use super::normalize::{NormBuf, View};
use super::redact::{resolve, Template};
use super::Scanner;

/// A finding of a stream, with offsets into everything fed so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFinding {
    /// Entity id (see [`Scanner::entity_name`]).
    pub entity: EntityId,
    /// Start, in characters.
    pub start: u64,
    /// End (exclusive), in characters.
    pub end: u64,
    /// Start, in UTF-8 bytes.
    pub start_byte: u64,
    /// End (exclusive), in UTF-8 bytes.
    pub end_byte: u64,
    /// How sure the detector is, 0 to 100.
    pub confidence: u8,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    entity: EntityId,
    class: u16,
    start_byte: u64,
    start_char: u64,
    /// View index the run has been checked up to.
    pos: usize,
    conf: u8,
    /// Below its threshold: the run is emitted as it is, not swallowed.
    quiet: bool,
}

/// An incremental redactor created by [`Scanner::stream`].
pub struct StreamScanner {
    scanner: Scanner,
    template: Template,
    nb: NormBuf,
    /// Original text from `pending[consumed..]` on is not emitted yet and starts at absolute byte
    /// `emitted`; the consumed front is dropped once per `push`, not once per finding (which made
    /// a large chunk dense with findings quadratic).
    pending: String,
    consumed: usize,
    emitted: u64,
    emitted_chars: u64,
    /// View index of the emit point: candidates before it are settled.
    base: usize,
    cs: CustomState,
    open: Option<Open>,
    utf8_tail: Vec<u8>,
    finished: bool,
    cands: Vec<Cand>,
    accepted: Vec<Cand>,
    plan: Vec<(EntityId, u64, u64, u8)>,
    /// Findings below their threshold, decided and emitted verbatim, not yet taken.
    quiet: Vec<StreamFinding>,
}

fn count_chars(s: &[u8]) -> u64 {
    s.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64
}

impl StreamScanner {
    pub(crate) fn new(scanner: Scanner, template: &str) -> StreamScanner {
        let cs = scanner.inner.det.custom.new_state();
        StreamScanner {
            scanner,
            template: Template::new(template),
            nb: NormBuf::new(0),
            pending: String::new(),
            consumed: 0,
            emitted: 0,
            emitted_chars: 0,
            base: 0,
            cs,
            open: None,
            utf8_tail: Vec::new(),
            finished: false,
            cands: Vec::new(),
            accepted: Vec::new(),
            plan: Vec::new(),
            quiet: Vec::new(),
        }
    }

    /// Takes the findings below their type's threshold decided so far (their text was emitted
    /// as it is); they are not in `found` of [`StreamScanner::feed`].
    pub fn take_quiet(&mut self) -> Vec<StreamFinding> {
        std::mem::take(&mut self.quiet)
    }

    /// Original characters fed but not emitted yet (held back, or swallowed by an open finding).
    pub fn held_chars(&self) -> usize {
        count_chars(&self.pending.as_bytes()[self.consumed..]) as usize
    }

    /// Adds `chunk`; appends the text that is safe to emit to `out` and the findings decided by
    /// this call to `found`.
    ///
    /// # Errors
    ///
    /// [`ScanError`] if the stream was finished.
    pub fn feed(&mut self, chunk: &str, out: &mut String, found: &mut Vec<StreamFinding>) -> Result<(), ScanError> {
        if self.finished {
            return Err(ScanError::stream_finished());
        }
        // keep map offsets small: a huge chunk is fed in pieces (split at character boundaries)
        let mut rest = chunk;
        while !rest.is_empty() {
            let mut k = rest.len().min(1 << 24);
            while !rest.is_char_boundary(k) {
                k -= 1;
            }
            let (head, tail) = rest.split_at(k);
            self.push(head);
            self.step(false, out, found);
            rest = tail;
        }
        Ok(())
    }

    /// Adds raw UTF-8 bytes that may split characters anywhere; an incomplete character is kept
    /// for the next call and invalid bytes become U+FFFD, as `String::from_utf8_lossy` would.
    ///
    /// # Errors
    ///
    /// [`ScanError`] if the stream was finished.
    pub fn feed_bytes(
        &mut self,
        bytes: &[u8],
        out: &mut String,
        found: &mut Vec<StreamFinding>,
    ) -> Result<(), ScanError> {
        if self.finished {
            return Err(ScanError::stream_finished());
        }
        let mut buf = std::mem::take(&mut self.utf8_tail);
        buf.extend_from_slice(bytes);
        let mut rest = &buf[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.feed(s, out, found)?;
                    break;
                }
                Err(e) => {
                    let (ok, bad) = rest.split_at(e.valid_up_to());
                    self.feed(std::str::from_utf8(ok).unwrap_or_default(), out, found)?;
                    match e.error_len() {
                        None => {
                            self.utf8_tail = bad.to_vec();
                            break;
                        }
                        Some(k) => {
                            self.feed("\u{FFFD}", out, found)?;
                            rest = &bad[k..];
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: emits everything still held and reports the last findings. Calling it
    /// again does nothing.
    pub fn finish(&mut self, out: &mut String, found: &mut Vec<StreamFinding>) {
        if self.finished {
            return;
        }
        if !self.utf8_tail.is_empty() {
            self.utf8_tail.clear();
            self.push("\u{FFFD}");
        }
        self.nb.finish();
        self.step(true, out, found);
        self.finished = true;
    }

    fn push(&mut self, s: &str) {
        self.nb.push(s);
        self.pending.drain(..self.consumed);
        self.consumed = 0;
        self.pending.push_str(s);
    }

    /// Emits original text up to absolute byte `to`, verbatim.
    fn emit_to(&mut self, to: u64, out: &mut String) {
        let k = (to - self.emitted) as usize;
        let part = &self.pending[self.consumed..self.consumed + k];
        out.push_str(part);
        self.emitted_chars += count_chars(part.as_bytes());
        self.emitted = to;
        self.consumed += k;
    }

    /// Drops original text up to absolute byte `to` (inside a finding); returns its length in chars.
    fn swallow_to(&mut self, to: u64) -> u64 {
        let k = (to - self.emitted) as usize;
        let chars = count_chars(&self.pending.as_bytes()[self.consumed..self.consumed + k]);
        self.emitted_chars += chars;
        self.emitted = to;
        self.consumed += k;
        chars
    }

    fn step(&mut self, eof: bool, out: &mut String, found: &mut Vec<StreamFinding>) {
        if self.open.is_some() && !self.advance_open(eof, out, found) {
            return;
        }
        let inner = std::sync::Arc::clone(&self.scanner.inner);
        self.cands.clear();
        self.accepted.clear();
        // plan from the view, then apply (the view borrows the buffer the apply step drains)
        let (n, p, open_at, to) = {
            let view = View::mapped(&self.nb, eof);
            let n = view.t.len();
            let c = inner.det.round(&view, self.base, &mut self.cs, &mut self.cands);
            resolve(&mut self.cands, self.base, c, &mut self.accepted);
            let mut p = c.max(self.base);
            let mut open_at = None;
            self.plan.clear();
            for a in &self.accepted {
                if a.is_open() {
                    open_at = Some((a.entity, view.orig(a.start), view.orig_end(n - 1), a.conf));
                    break;
                }
                self.plan
                    .push((a.entity, view.orig(a.start), view.orig_end(a.end - 1), a.conf));
                p = p.max(a.end);
            }
            (n, p, open_at, view.orig(p))
        };
        for i in 0..self.plan.len() {
            let (entity, start_byte, end_byte, confidence) = self.plan[i];
            self.emit_to(start_byte, out);
            let start_char = self.emitted_chars;
            if !self.scanner.acts_on(entity, confidence) {
                self.emit_to(end_byte, out);
                self.quiet.push(StreamFinding {
                    entity,
                    start: start_char,
                    end: self.emitted_chars,
                    start_byte,
                    end_byte,
                    confidence,
                });
                continue;
            }
            self.template.push(out, inner.names[usize::from(entity)].as_str());
            let chars = self.swallow_to(end_byte);
            found.push(StreamFinding {
                entity,
                start: start_char,
                end: start_char + chars,
                start_byte,
                end_byte,
                confidence,
            });
        }
        if let Some((entity, start_byte, end_byte, conf)) = open_at {
            self.emit_to(start_byte, out);
            let quiet = !self.scanner.acts_on(entity, conf);
            if !quiet {
                self.template.push(out, inner.names[usize::from(entity)].as_str());
            }
            let start_char = self.emitted_chars;
            let class = if entity == Builtin::Jwt.id() { JWTRUN } else { PEMBODY };
            self.open = Some(Open {
                entity,
                class,
                start_byte,
                start_char,
                pos: n,
                conf,
                quiet,
            });
            if quiet {
                self.emit_to(end_byte, out);
            } else {
                self.swallow_to(end_byte);
            }
            self.base = n;
        } else {
            self.emit_to(to, out);
            self.base = p;
            self.cs.discard_before(p);
        }
        self.compact();
    }

    /// Extends an open finding over newly arrived text. Returns whether it closed (so normal
    /// scanning resumes after it).
    fn advance_open(&mut self, eof: bool, out: &mut String, found: &mut Vec<StreamFinding>) -> bool {
        let Some(mut o) = self.open else { return true };
        let (r, closed, to) = {
            let view = View::mapped(&self.nb, eof);
            let t = view.t;
            let r = o.pos + t[o.pos..].iter().take_while(|&&b| is(o.class, b)).count();
            let closed = r < t.len() || eof;
            // r >= 1: an open run always has at least one byte before the emit point
            (r, closed, if r > 0 { view.orig_end(r - 1) } else { self.emitted })
        };
        if to > self.emitted {
            if o.quiet {
                self.emit_to(to, out);
            } else {
                self.swallow_to(to);
            }
        }
        o.pos = r;
        self.base = r;
        if !closed {
            self.open = Some(o);
            self.compact();
            return false;
        }
        let f = StreamFinding {
            entity: o.entity,
            start: o.start_char,
            end: self.emitted_chars,
            start_byte: o.start_byte,
            end_byte: self.emitted,
            confidence: o.conf,
        };
        if o.quiet {
            self.quiet.push(f);
        } else {
            found.push(f);
        }
        self.open = None;
        self.cs.discard_before(r);
        true
    }

    /// Drops view bytes that are no longer needed as look-behind context.
    fn compact(&mut self) {
        let ctx = self.scanner.inner.det.context_len();
        let drop = self.base.saturating_sub(ctx);
        if drop >= ctx.max(1024) {
            let drop = self.char_floor(drop);
            self.nb.drain_front(drop);
            self.base -= drop;
            self.cs.shift(drop);
            if let Some(o) = &mut self.open {
                o.pos -= drop;
            }
        }
    }

    /// The largest UTF-8 character boundary of the view at or below `i`.
    fn char_floor(&self, mut i: usize) -> usize {
        while i > 0 && (self.nb.bytes[i] as i8) < -0x40 {
            i -= 1;
        }
        i
    }
}
