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

use super::Scanner;
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
    has_finding(scanner, data, 0)
}

fn has_finding(scanner: &Scanner, data: &[u8], depth: usize) -> bool {
    any_value(data, MIN_NUMBER, RUN_KEYS, true, &mut |value| match value {
        None => true,
        Some(text) => {
            if !scanner.scan_scored(text).is_empty() {
                return true;
            }
            let inner = text.trim_start();
            if inner.starts_with('{') || inner.starts_with('[') {
                return depth >= MAX_NESTED || has_finding(scanner, inner.as_bytes(), depth + 1);
            }
            false
        }
    })
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
