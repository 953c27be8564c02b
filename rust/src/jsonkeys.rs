//! Duplicate object keys in a JSON document (no pyo3, no allocation for keys without escapes).
//!
//! RFC 8259 leaves the meaning of an object with a repeated key open, and parsers disagree: orjson
//! and Python keep the last value, others the first or refuse the document. A gateway that scans
//! what its parser kept and forwards the original bytes can then be walked around (`{"messages":
//! <secret>, "messages": <clean>}`). [`first_duplicate_key`] finds the first repeated key so the
//! request can be refused.
//!
//! It is a tokenizer, not a validator: the caller has already parsed the document (orjson), so the
//! input is known to be well-formed JSON. On any input it returns without panicking; on malformed
//! input its answer is unspecified. Keys are compared after decoding their escapes (`"a"` and
//! `"\u0061"` are the same key); a key without a backslash is compared as its raw bytes. Small
//! objects compare keys linearly; an object past [`SET_AFTER`] keys moves them to a hash set, so a
//! document with many keys stays linear.

use std::borrow::Cow;
use std::collections::HashSet;

/// Objects with more keys than this compare new keys through a hash set.
const SET_AFTER: usize = 16;

/// One open object (its keys so far) or array.
struct Frame<'a> {
    object: bool,
    expect_key: bool,
    keys: Vec<Cow<'a, [u8]>>,
    set: Option<HashSet<Cow<'a, [u8]>>>,
}

impl<'a> Frame<'a> {
    /// Adds `key`; false if the object already has it.
    fn insert(&mut self, key: Cow<'a, [u8]>) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(key);
        }
        if self.keys.contains(&key) {
            return false;
        }
        self.keys.push(key);
        if self.keys.len() > SET_AFTER {
            self.set = Some(self.keys.drain(..).collect());
        }
        true
    }
}

/// The byte offset of the first key that repeats a key of the same object (the offset of its
/// opening quote), or `None` when every object's keys are distinct.
///
/// # Example
/// ```
/// use _core::jsonkeys::first_duplicate_key;
/// assert_eq!(first_duplicate_key(br#"{"a": 1, "b": {"a": 2}}"#), None);
/// assert_eq!(first_duplicate_key(br#"{"a": 1, "\u0061": 2}"#), Some(9));
/// ```
pub fn first_duplicate_key(data: &[u8]) -> Option<usize> {
    match first_problem(data, usize::MAX) {
        Some(Problem::DuplicateKey(at)) => Some(at),
        _ => None,
    }
}

/// What [`first_problem`] found first in a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// An array or object opens deeper than the allowed nesting (the offset of its bracket).
    TooDeep(usize),
    /// A key repeats a key of the same object (the offset of its opening quote).
    DuplicateKey(usize),
}

/// The first repeated key or the first array or object nested more than `max_depth` levels deep
/// (the document itself is level 1), whichever comes first, in one pass: the request path's
/// structural check of a body it has parsed.
///
/// # Example
/// ```
/// use _core::jsonkeys::{first_problem, Problem};
/// assert_eq!(first_problem(br#"{"a": [[1]]}"#, 3), None);
/// assert_eq!(first_problem(br#"{"a": [[1]]}"#, 2), Some(Problem::TooDeep(7)));
/// assert_eq!(first_problem(br#"{"a": 1, "a": 2}"#, 2), Some(Problem::DuplicateKey(9)));
/// ```
pub fn first_problem(data: &[u8], max_depth: usize) -> Option<Problem> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            open @ (b'{' | b'[') => {
                if stack.len() >= max_depth {
                    return Some(Problem::TooDeep(i));
                }
                stack.push(Frame {
                    object: open == b'{',
                    expect_key: open == b'{',
                    keys: Vec::new(),
                    set: None,
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.expect_key = frame.object;
                }
            }
            b'"' => {
                let start = i;
                let (end, escaped) = string_end(data, i + 1);
                if let Some(frame) = stack.last_mut() {
                    if frame.object && frame.expect_key {
                        frame.expect_key = false;
                        let raw = &data[start + 1..end.min(data.len())];
                        let key = if escaped {
                            Cow::Owned(unescape(raw))
                        } else {
                            Cow::Borrowed(raw)
                        };
                        if !frame.insert(key) {
                            return Some(Problem::DuplicateKey(start));
                        }
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Hands `visit` the contents of every string value of a JSON document (and, with `with_keys`,
/// of every object key), escapes decoded, and the text of every number of at least `min_number`
/// bytes, in document order, until `visit` returns true; returns whether it did. Its second
/// argument says whether the text is an object key. A string whose
/// escapes do not decode to UTF-8 (a lone surrogate) is handed over as `None`, and so is a key
/// that is one of `stop_keys`: a caller that wants a superset of what a reader of the document
/// sees answers true to both.
///
/// Like [`first_problem`] it is a tokenizer for a document the caller has already parsed: on
/// malformed input it returns without panicking, its answer unspecified.
///
/// # Example
/// ```
/// use _core::jsonkeys::any_value;
/// let mut seen = Vec::new();
/// let doc = br#"{"a": "x\u0040y", "n": [12, 12345678901], "k": {"b": "z"}}"#;
/// any_value(doc, 10, &[], false, &mut |v, _key| {
///     seen.push(v.unwrap().to_string());
///     false
/// });
/// assert_eq!(seen, ["x@y", "12345678901", "z"]);
/// ```
pub fn any_value(
    data: &[u8],
    min_number: usize,
    stop_keys: &[&[u8]],
    with_keys: bool,
    visit: &mut dyn FnMut(Option<&str>, bool) -> bool,
) -> bool {
    // Per open container: (is an object, the next string is a key).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            open @ (b'{' | b'[') => stack.push((open == b'{', open == b'{')),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = top.0;
                }
            }
            b'"' => {
                let (end, escaped) = string_end(data, i + 1);
                let raw = &data[i + 1..end.min(data.len())];
                let key = match stack.last_mut() {
                    Some(top) if top.0 && top.1 => {
                        top.1 = false;
                        true
                    }
                    _ => false,
                };
                if key {
                    let name = if escaped {
                        Cow::Owned(unescape(raw))
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if stop_keys.iter().any(|k| *k == &*name) {
                        if visit(None, true) {
                            return true;
                        }
                    } else if with_keys && visit(std::str::from_utf8(&name).ok(), true) {
                        return true;
                    }
                } else {
                    let text = if escaped {
                        Cow::Owned(unescape(raw))
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if visit(std::str::from_utf8(&text).ok(), false) {
                        return true;
                    }
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < data.len() && matches!(data[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                // ASCII only, so always UTF-8
                if i - start >= min_number && visit(std::str::from_utf8(&data[start..i]).ok(), false) {
                    return true;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// The index of the closing quote of the string whose contents start at `from` (or `data.len()`
/// if it never closes), and whether it holds a backslash.
fn string_end(data: &[u8], from: usize) -> (usize, bool) {
    let mut i = from;
    let mut escaped = false;
    while i < data.len() {
        match memchr::memchr2(b'"', b'\\', &data[i..]) {
            None => return (data.len(), escaped),
            Some(at) => {
                i += at;
                if data[i] == b'"' {
                    return (i, escaped);
                }
                escaped = true;
                i += 2; // the backslash and the character it escapes
            }
        }
    }
    (data.len(), escaped)
}

/// The UTF-8 bytes a JSON string's contents stand for. Malformed escapes are kept as written
/// (the document is well-formed when this runs, so they do not occur).
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let simple = match raw[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let Some(unit) = hex4(raw, i + 2).filter(|_| raw[i + 1] == b'u') else {
            out.push(b);
            i += 1;
            continue;
        };
        i += 6;
        let mut code = u32::from(unit);
        if (0xD800..0xDC00).contains(&code) && raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
            if let Some(low) = hex4(raw, i + 2).filter(|l| (0xDC00..0xE000).contains(l)) {
                code = 0x10000 + ((code - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                i += 6;
            }
        }
        match char::from_u32(code) {
            Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            // a lone surrogate: keep it distinguishable from every character
            None => out.extend_from_slice(&[0xFF, (code >> 8) as u8, code as u8]),
        }
    }
    out
}

fn hex4(raw: &[u8], at: usize) -> Option<u16> {
    let digits = raw.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A JSON value for the property test: objects keep their keys in order, repeats included.
    #[derive(Debug, Clone)]
    enum Value {
        Num,
        Str(String),
        Arr(Vec<Value>),
        Obj(Vec<(String, Value)>),
    }

    fn value() -> impl Strategy<Value = Value> {
        let key = "[ab\"\\/é😀]{0,3}";
        let leaf = prop_oneof![Just(Value::Num), key.prop_map(Value::Str)];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Arr),
                prop::collection::vec((key, inner), 0..6).prop_map(Value::Obj),
            ]
        })
    }

    /// `text` as a JSON string, each character written plainly or as `\uXXXX` escapes by `pick`.
    fn quoted(text: &str, pick: &mut impl FnMut() -> bool) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            if c == '"' || c == '\\' || pick() {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                out.push(c);
            }
        }
        out.push('"');
        out
    }

    fn write(v: &Value, pick: &mut impl FnMut() -> bool, out: &mut String) {
        match v {
            Value::Num => out.push('1'),
            Value::Str(s) => out.push_str(&quoted(s, pick)),
            Value::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, pick, out);
                }
                out.push(']');
            }
            Value::Obj(members) => {
                out.push('{');
                for (i, (k, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(k, pick));
                    out.push_str(" : ");
                    write(item, pick, out);
                }
                out.push('}');
            }
        }
    }

    /// `v` as JSON, a third of its characters (chosen by `seed`) written as escapes.
    fn written(v: &Value, seed: u64) -> String {
        let mut state = seed | 1;
        let mut pick = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.is_multiple_of(3)
        };
        let mut doc = String::new();
        write(v, &mut pick, &mut doc);
        doc
    }

    fn has_repeat(v: &Value) -> bool {
        match v {
            Value::Num | Value::Str(_) => false,
            Value::Arr(items) => items.iter().any(has_repeat),
            Value::Obj(members) => {
                let mut seen = HashSet::new();
                members.iter().any(|(k, _)| !seen.insert(k.clone())) || members.iter().any(|(_, v)| has_repeat(v))
            }
        }
    }

    proptest! {
        #[test]
        fn finds_a_repeat_exactly_when_there_is_one(v in value(), seed in any::<u64>()) {
            let doc = written(&v, seed);
            prop_assert_eq!(first_duplicate_key(doc.as_bytes()).is_some(), has_repeat(&v), "{}", doc);
        }
    }

    fn strings_of(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Num => {}
            Value::Str(s) => out.push(s.clone()),
            Value::Arr(items) => items.iter().for_each(|item| strings_of(item, out)),
            Value::Obj(members) => members.iter().for_each(|(_, item)| strings_of(item, out)),
        }
    }

    fn values(doc: &[u8], min_number: usize, stop_keys: &[&[u8]]) -> Vec<Option<String>> {
        values_and_keys(doc, min_number, stop_keys, false)
    }

    fn values_and_keys(doc: &[u8], min_number: usize, stop_keys: &[&[u8]], with_keys: bool) -> Vec<Option<String>> {
        let mut seen = Vec::new();
        any_value(doc, min_number, stop_keys, with_keys, &mut |v, _| {
            seen.push(v.map(str::to_string));
            false
        });
        seen
    }

    proptest! {
        #[test]
        fn hands_over_every_string_value_decoded_and_no_key(v in value(), seed in any::<u64>()) {
            let doc = written(&v, seed);
            let mut want = Vec::new();
            strings_of(&v, &mut want);
            let got: Vec<String> = values(doc.as_bytes(), 1, &[]).into_iter().flatten().filter(|s| s != "1").collect();
            prop_assert_eq!(got, want, "{}", doc);
        }
    }

    #[test]
    fn numbers_from_their_length_and_stop_keys_and_surrogates_as_none() {
        let doc = br#"{"a": -123456789, "b": 4111111111111111, "c": 1.5e300, "d": [true, null, 42]}"#;
        assert_eq!(
            values(doc, 10, &[]),
            [Some("-123456789".into()), Some("4111111111111111".into())]
        );
        let doc = br#"{"logprobs": [{"token": "41", "x": "11"}], "token": 1}"#;
        assert_eq!(
            values(doc, 10, &[b"token"]),
            [None, Some("41".into()), Some("11".into()), None]
        );
        assert_eq!(
            values(br#"["\ud800", "\ud83d\ude00"]"#, 10, &[]),
            [None, Some("😀".into())]
        );
        // escaped key spellings are stop keys too; a stop key's value is still handed over
        assert_eq!(
            values(br#"{"tok\u0065n": "a"}"#, 10, &[b"token"]),
            [None, Some("a".into())]
        );
        // keys too when asked, decoded, in document order; stop keys still as None
        let doc = br#"{"k\u0031": "v", "n": {"token": "t"}}"#;
        assert_eq!(
            values_and_keys(doc, 10, &[b"token"], true),
            [
                Some("k1".into()),
                Some("v".into()),
                Some("n".into()),
                None,
                Some("t".into())
            ]
        );
        // the callback ends the walk
        let mut n = 0;
        assert!(any_value(br#"["a", "b", "c"]"#, 10, &[], false, &mut |v, _| {
            n += 1;
            v == Some("b")
        }));
        assert_eq!(n, 2);
    }

    #[test]
    fn any_value_never_panics_on_malformed_input() {
        for bytes in scraps(b"{}[]\":,\\u0a1d8- ", 7) {
            let _ = values(&bytes, 1, &[b"a"]);
        }
    }

    /// 20,000 short byte strings of `alphabet` (malformed JSON, mostly), from `seed`.
    fn scraps(alphabet: &'static [u8], seed: u64) -> impl Iterator<Item = Vec<u8>> {
        let mut state = seed;
        (0..20_000).map(move |_| {
            let len = (state % 40) as usize;
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(state >> 59) as usize % alphabet.len()]
                })
                .collect()
        })
    }

    fn dup(s: &str) -> Option<usize> {
        first_duplicate_key(s.as_bytes())
    }

    #[test]
    fn distinct_keys_pass() {
        assert_eq!(dup(r#"{}"#), None);
        assert_eq!(dup(r#"{"a":1,"b":[{"a":1},{"a":2}],"c":{"a":{"a":1}}}"#), None);
        assert_eq!(dup(r#"[{"a":1},{"a":1}]"#), None);
        assert_eq!(dup(r#""a""#), None);
        assert_eq!(dup(r#"{"a":"a","b":"a"}"#), None); // values are not keys
        assert_eq!(dup(r#"{"a":["a","a"]}"#), None);
        assert_eq!(dup(r#"{"A":1,"a":2}"#), None); // case matters
    }

    #[test]
    fn repeats_are_found_where_they_are() {
        assert_eq!(dup(r#"{"a":1,"a":2}"#), Some(7));
        assert_eq!(dup(r#"{"x":{"m":[1],"m":[2]}}"#), Some(14));
        assert_eq!(dup(r#"[1, {"k": {}, "k": {}}]"#), Some(14));
        assert_eq!(dup(r#"{"a":{"b":1},"c":2,"a":3}"#), Some(19)); // after a nested object closes
    }

    #[test]
    fn escaped_spellings_of_one_key_are_the_same_key() {
        assert_eq!(dup(r#"{"messages":1,"messag\u0065s":2}"#), Some(14));
        assert_eq!(dup(r#"{"a\"b":1,"a\u0022b":2}"#), Some(10));
        assert_eq!(dup(r#"{"\ud83d\ude00":1,"😀":2}"#), Some(18));
        assert_eq!(dup(r#"{"a\/b":1,"a/b":2}"#), Some(10));
        assert_eq!(dup(r#"{"a\\":1,"a\\\\":2}"#), None);
    }

    #[test]
    fn strings_with_structural_characters_do_not_confuse_it() {
        assert_eq!(dup(r#"{"a":"{\"a\":1,","b":"}],\"a\""}"#), None);
        assert_eq!(dup(r#"{"a\\":"x","b":1,"a\\":2}"#), Some(17));
    }

    #[test]
    fn large_objects_use_the_set_and_still_find_repeats() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let doc = format!("{{{}}}", keys.join(","));
        assert_eq!(first_duplicate_key(doc.as_bytes()), None);
        let doc = format!("{{{},\"k7\":0}}", keys.join(","));
        assert_eq!(first_duplicate_key(doc.as_bytes()), Some(doc.len() - 7));
    }

    #[test]
    fn nesting_past_the_bound_is_found_where_it_opens() {
        assert_eq!(first_problem(b"[[[]]]", 3), None);
        assert_eq!(first_problem(b"[[[]]]", 2), Some(Problem::TooDeep(2)));
        assert_eq!(first_problem(br#"{"a": "[[[[", "b": {}}"#, 2), None); // brackets in strings do not count
        assert_eq!(
            first_problem(br#"{"a": 1, "a": [[2]]}"#, 2),
            Some(Problem::DuplicateKey(9))
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(first_problem(deep.as_bytes(), 64), Some(Problem::TooDeep(64)));
    }

    #[test]
    fn malformed_input_never_panics() {
        for s in [
            "{",
            "}",
            "{\"a",
            "{\"a\\",
            "{\"a\\u12",
            "\"\\u",
            "{\"\\ud800\":1,\"\\ud800\":2}",
            ",,,:]",
            "{\"a\":1,,\"a\":2",
        ] {
            let _ = dup(s);
        }
        for bytes in scraps(b"{}[]\":,\\u0a1d8 ", 1) {
            let _ = first_duplicate_key(&bytes);
        }
    }
}
