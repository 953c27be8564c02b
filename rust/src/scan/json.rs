//! Whether a JSON document holds anything a scanner finds, without building the document: the
//! request path's quick answer for the common body with nothing to redact.
//!
//! The gateway redacts the text fields of a parsed body, field by field, in Python. Most bodies
//! hold nothing the scanner finds, and for them that walk is pure cost. [`json_has_finding`] looks
//! at a superset of those fields straight from the bytes (every string value and object key,
//! escapes decoded; every number of 10 or more characters; the strings and keys of a string that
//! is itself JSON, as the walk reads a tool call's arguments), each scanned on its own as the walk
//! scans it; only when it says
//! yes does the walk run. It answers yes when it cannot decide: a string that does not decode to
//! UTF-8, a `token` key (a logprob run, whose tokens the walk scans joined), JSON nested deeper
//! than [`MAX_NESTED`].
//!
//! When it says yes, [`json_findings`] is the same reading keeping what it found: each string
//! with a finding and its findings, so that the walk looks a string up instead of scanning it
//! again, and skips its pass over object keys when no key had one.

use std::collections::HashMap;

use super::{Finding, Scanner};
use crate::jsonkeys::any_value;

/// How many levels of JSON inside a JSON string are read before the answer is a cautious yes.
pub const MAX_NESTED: usize = 8;

/// The shortest number the walk scans (an integer of 10 digits is 10 characters; a shorter token
/// cannot hold one).
const MIN_NUMBER: usize = 10;

/// Keys whose objects the walk reads as runs of tokens joined (see the module doc).
const RUN_KEYS: &[&[u8]] = &[b"token"];

/// True if `scanner` finds something in a string value (or long number) of the JSON document
/// `data`, or cannot rule it out (see the module doc); false only when the field-by-field walk
/// would find nothing either.
pub fn json_has_finding(scanner: &Scanner, data: &[u8]) -> bool {
    each_text(data, 0, &mut |text, _| !scanner.scan_scored(text).is_empty())
}

/// Hands `visit` every text of `data` the walk may scan (see the module doc) and whether it is an
/// object key, the texts of JSON inside a string after that string, until `visit` returns true;
/// true when it did, or when the reading cannot decide.
fn each_text(data: &[u8], depth: usize, visit: &mut dyn FnMut(&str, bool) -> bool) -> bool {
    any_value(data, MIN_NUMBER, RUN_KEYS, true, &mut |value, key| {
        let Some(text) = value else {
            return true;
        };
        if visit(text, key) {
            return true;
        }
        let inner = text.trim_start();
        if inner.starts_with('{') || inner.starts_with('[') {
            return depth >= MAX_NESTED || each_text(inner.as_bytes(), depth + 1, &mut *visit);
        }
        false
    })
}

/// What [`json_findings`] read: every string of the document with a finding (below its threshold
/// too), with [`Scanner::scan_scored`]'s findings of it, and whether one of them was an object key.
#[derive(Debug, Default)]
pub struct JsonFindings {
    pub found: HashMap<String, Vec<Finding>>,
    pub in_a_key: bool,
}

/// The strings (values and keys, escapes decoded), long numbers and strings of JSON inside
/// strings of `data` that `scanner` finds something in, as [`json_has_finding`] reads them; None
/// where that says a cautious yes (it cannot decide). An empty answer is that function's no.
pub fn json_findings(scanner: &Scanner, data: &[u8]) -> Option<JsonFindings> {
    let mut out = JsonFindings::default();
    let undecided = each_text(data, 0, &mut |text, key| {
        if out.found.contains_key(text) {
            out.in_a_key |= key;
        } else {
            let found = scanner.scan_scored(text);
            if !found.is_empty() {
                out.in_a_key |= key;
                out.found.insert(text.to_owned(), found);
            }
        }
        false
    });
    (!undecided).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Rules;

    fn scanner() -> Scanner {
        Scanner::new(&Rules {
            entities: None,
            custom_patterns: Vec::new(),
            keywords: Vec::new(),
            min_confidence: Vec::new(),
            allow: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn clean_bodies_say_no() {
        let s = scanner();
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise Hamlet in two sentences.\n"}],"max_tokens":128,"temperature":0.2}"#;
        assert!(!json_has_finding(&s, body));
        assert!(!json_has_finding(&s, br#"{"n": 123456789}"#));
    }

    #[test]
    fn values_in_strings_escapes_numbers_and_nested_json_say_yes() {
        let s = scanner();
        for body in [
            r#"{"messages":[{"content":"mail maria@example.com"}]}"#,
            r#"{"content":"maria\u0040example.com"}"#,
            r#"{"content":"SSN 536-22-1234"}"#,
            r#"{"card": 4111111111111111}"#,
            r#"{"tool_calls":[{"function":{"arguments":"{\"email\":\"maria\\u0040example.com\"}"}}]}"#,
            r#"{"a":"[{\"b\":\"{\\\"c\\\":\\\"maria@example.com\\\"}\"}]"}"#,
            // object keys are text a caller writes too
            r#"{"metadata":{"536-22-1234":"x"}}"#,
            r#"{"arguments":"{\"maria\u0040example.com\": 1}"}"#,
        ] {
            assert!(json_has_finding(&s, body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn what_it_cannot_decide_says_yes() {
        let s = scanner();
        assert!(json_has_finding(&s, br#"{"logprobs":{"content":[{"token":"41"}]}}"#));
        assert!(json_has_finding(&s, br#"{"content":"\ud800"}"#));
        let mut deep = String::from("\"x\"");
        for _ in 0..=MAX_NESTED + 1 {
            deep = serde_like_quote(&format!("[{deep}]"));
        }
        assert!(json_has_finding(&s, deep.as_bytes()));
    }

    #[test]
    fn findings_are_the_scan_of_each_string_and_say_when_a_key_held_one() {
        let s = scanner();
        let clean = br#"{"model":"m","messages":[{"role":"user","content":"Summarise Hamlet."}]}"#;
        let got = json_findings(&s, clean).unwrap();
        assert!(got.found.is_empty() && !got.in_a_key);
        let body = r#"{"a":"mail maria\u0040example.com","b":"mail maria@example.com","c":"x","n":4111111111111111,
            "args":"{\"SSN 536-22-1234\": 1}"}"#;
        let got = json_findings(&s, body.as_bytes()).unwrap();
        let mut texts: Vec<&str> = got.found.keys().map(String::as_str).collect();
        texts.sort_unstable();
        // one entry per distinct text; the key inside the JSON string counts as a key
        assert_eq!(
            texts,
            [
                "4111111111111111",
                "SSN 536-22-1234",
                "mail maria@example.com",
                "{\"SSN 536-22-1234\": 1}"
            ]
        );
        assert!(got.in_a_key);
        for (text, found) in &got.found {
            assert_eq!(found, &s.scan_scored(text), "{text}");
        }
        // a key repeating a value already found is still a key with a finding
        let repeated = json_findings(&s, br#"{"k": "SSN 536-22-1234", "v": {"SSN 536-22-1234": 1}}"#).unwrap();
        assert!(repeated.in_a_key);
        let value_only = json_findings(&s, br#"{"k": "SSN 536-22-1234"}"#).unwrap();
        assert!(!value_only.in_a_key);
    }

    #[test]
    fn findings_cannot_decide_where_the_quick_answer_cannot() {
        let s = scanner();
        assert!(json_findings(&s, br#"{"logprobs":{"content":[{"token":"41"}]}}"#).is_none());
        assert!(json_findings(&s, br#"{"content":"\ud800"}"#).is_none());
        let mut deep = String::from("\"x\"");
        for _ in 0..=MAX_NESTED + 1 {
            deep = serde_like_quote(&format!("[{deep}]"));
        }
        assert!(json_findings(&s, deep.as_bytes()).is_none());
    }

    /// `text` as a JSON string literal.
    fn serde_like_quote(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                _ => out.push(c),
            }
        }
        out.push('"');
        out
    }
}
