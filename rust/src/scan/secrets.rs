//! Secret parsers, each started at its literal anchor (see `ANCHORS` in `detectors.rs`), plus the
//! anchorless AWS secret access key, started from a digit inside a 40-character base64 token.
//!
//! Placeholders (`ghp_XXXX…`, `AKIA0000…`) are rejected by a distinct-byte and entropy floor on the
//! random part, the way gitleaks uses entropy floors.
//!
//! Two secrets have no length limit in their format and so get a cap, measured in original bytes
//! from the start of the match: [`PEM_CAP`] and [`JWT_CAP`]. A PEM block whose `-----END … PRIVATE
//! KEY-----` footer is not within the cap is not leaked and not held forever: it is redacted from
//! its header to the end of the run of key-body characters that follows (base64, whitespace,
//! `\`, `:`, `,`, `-`), however long that run is. A stream emits the placeholder as soon as the cap
//! is passed and then swallows the rest of the run as it arrives (an *open* finding), so the
//! hold-back stays bounded by the cap. A JWT longer than its cap is treated the same way, over the
//! run of `[A-Za-z0-9_.=-]`.

use memchr::memmem;

use super::detectors::{
    at, b64_run_end, b64_run_start, context_before, is, prev, Anchor, ContextWords, Detectors, Memo, Out, Res, ALNUM,
    DIGIT, JWTRUN, LOWER, PEMBODY, UPPER, URLSAFE,
};
use super::entity::Builtin;
use super::normalize::View;
use super::validate::random_enough;

/// Length of an AWS secret access key.
pub const AWS_SECRET_LEN: usize = 40;
/// Longest PEM private key block matched as a unit, in original bytes (an RSA-4096 PKCS#8 key is
/// about 3.3 KB, RSA-8192 and PGP key blocks about 6.5 KB).
pub const PEM_CAP: u64 = 8192;
/// Longest JWT matched as a unit, in original bytes (browsers cap cookies at 4 KB).
pub const JWT_CAP: u64 = 8192;

const AWS_WORDS: ContextWords = ContextWords::new(&[b"aws", b"secret", b"access", b"credential", b"key"]);

/// Reads the run of bytes matching `pred` from `i`, at most `max + 1` of them.
macro_rules! run {
    ($v:expr, $i:expr, $pred:expr, $max:expr) => {{
        let start: usize = $i;
        let mut e = start;
        while let Some(b) = at!($v, e) {
            if !$pred(b) || e - start > $max {
                break;
            }
            e += 1;
        }
        e
    }};
}

fn alnum(b: u8) -> bool {
    is(ALNUM, b)
}

fn urlsafe(b: u8) -> bool {
    is(URLSAFE, b)
}

/// Runs the parser for an anchor found at `s`.
pub fn anchored(d: &Detectors, v: &View, s: usize, kind: Anchor, memo: &mut Memo, out: &mut Out) {
    let on = |b: Builtin| d.on(b);
    match kind {
        Anchor::AwsKeyId if on(Builtin::AwsAccessKeyId) => {
            out.put(s, Builtin::AwsAccessKeyId.id(), aws_key_id(v, s, 4))
        }
        Anchor::AwsKeyId3T if on(Builtin::AwsAccessKeyId) => {
            out.put(s, Builtin::AwsAccessKeyId.id(), aws_key_id(v, s, 3))
        }
        Anchor::Github if on(Builtin::GithubToken) => out.put(s, Builtin::GithubToken.id(), github(v, s)),
        Anchor::GithubPat if on(Builtin::GithubToken) => out.put(s, Builtin::GithubToken.id(), github_pat(v, s)),
        Anchor::Slack if on(Builtin::SlackToken) => out.put(s, Builtin::SlackToken.id(), slack(v, s)),
        Anchor::SlackHook if on(Builtin::SlackToken) => out.put(s, Builtin::SlackToken.id(), slack_hook(v, s)),
        Anchor::SkDash => {
            let (ent, r) = sk(v, s);
            if on(ent) || r == Res::More {
                out.put(s, ent.id(), r);
            }
        }
        Anchor::Stripe if on(Builtin::StripeKey) => out.put(s, Builtin::StripeKey.id(), stripe(v, s)),
        Anchor::Google if on(Builtin::GoogleApiKey) => out.put(s, Builtin::GoogleApiKey.id(), google(v, s)),
        Anchor::Pem if on(Builtin::PrivateKey) => out.put(s, Builtin::PrivateKey.id(), pem(v, s, memo)),
        Anchor::Jwt if on(Builtin::Jwt) => out.put(s, Builtin::Jwt.id(), jwt(v, s)),
        _ => {}
    }
}

/// `AKIA`/`ASIA`/`ABIA`/`ACCA` + 16 base32, or `A3T` + one `[A-Z0-9]` + 16 base32.
fn aws_key_id(v: &View, s: usize, plen: usize) -> Res {
    if prev(v.t, s).is_some_and(alnum) {
        return Res::No;
    }
    let mut i = s + plen;
    if plen == 3 {
        match at!(v, i) {
            Some(c) if c.is_ascii_uppercase() || c.is_ascii_digit() => i += 1,
            _ => return Res::No,
        }
    }
    let e = run!(v, i, |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b), 16);
    if e - i != 16 || at!(v, e).is_some_and(alnum) || !random_enough(&v.t[i..e], 6, 2.5) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 or more alphanumerics.
fn github(v: &View, s: usize) -> Res {
    if prev(v.t, s).is_some_and(alnum) {
        return Res::No;
    }
    let i = s + 4;
    let e = run!(v, i, alnum, 251);
    if !(36..=251).contains(&(e - i)) || at!(v, e) == Some(b'_') || !random_enough(&v.t[i..e], 10, 3.0) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `github_pat_` + `[A-Za-z0-9_]{70,}` (fine-grained tokens are 82 long).
fn github_pat(v: &View, s: usize) -> Res {
    if prev(v.t, s).is_some_and(alnum) {
        return Res::No;
    }
    let i = s + 11;
    let e = run!(v, i, |b: u8| alnum(b) || b == b'_', 255);
    if !(70..=255).contains(&(e - i)) || !random_enough(&v.t[i..e], 10, 3.0) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`, `xapp-` + `[A-Za-z0-9-]{10,}` with digits.
fn slack(v: &View, s: usize) -> Res {
    if prev(v.t, s).is_some_and(alnum) {
        return Res::No;
    }
    let i = s + 5;
    let mut e = run!(v, i, |b: u8| alnum(b) || b == b'-', 250);
    if e - i > 250 {
        return Res::No;
    }
    while e > i && v.t[e - 1] == b'-' {
        e -= 1;
    }
    let body = &v.t[i..e];
    if body.len() < 10 || !body.iter().any(u8::is_ascii_digit) || !random_enough(body, 6, 2.5) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `hooks.slack.com/services/T…/B…/…`.
fn slack_hook(v: &View, s: usize) -> Res {
    let mut i = s + 25;
    for lead in [b'T', b'B'] {
        if at!(v, i) != Some(lead) {
            return Res::No;
        }
        let e = run!(v, i + 1, |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit(), 12);
        if !(6..=12).contains(&(e - i - 1)) || at!(v, e) != Some(b'/') {
            return Res::No;
        }
        i = e + 1;
    }
    let e = run!(v, i, alnum, 40);
    if !(16..=40).contains(&(e - i)) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `sk-ant-…` (Anthropic) or `sk-proj-…` / `sk-…T3BlbkFJ…` (OpenAI).
fn sk(v: &View, s: usize) -> (Builtin, Res) {
    fn is_ant(v: &View, s: usize) -> Res {
        for (k, &c) in b"ant-".iter().enumerate() {
            if at!(v, s + 3 + k) != Some(c) {
                return Res::No;
            }
        }
        Res::Yes(0)
    }
    if prev(v.t, s).is_some_and(urlsafe) {
        return (Builtin::OpenaiApiKey, Res::No);
    }
    match is_ant(v, s) {
        Res::More => (Builtin::OpenaiApiKey, Res::More),
        Res::Yes(_) => (Builtin::AnthropicApiKey, anthropic(v, s)),
        _ => (Builtin::OpenaiApiKey, openai(v, s)),
    }
}

fn anthropic(v: &View, s: usize) -> Res {
    let i = s + 7;
    let e = run!(v, i, urlsafe, 250);
    let rest = &v.t[i..e];
    let kind_len = rest
        .iter()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        .count();
    if !(40..=250).contains(&rest.len())
        || !(2..=10).contains(&kind_len)
        || rest.get(kind_len) != Some(&b'-')
        || !random_enough(rest, 10, 3.0)
    {
        return Res::No;
    }
    Res::Yes(e)
}

fn openai(v: &View, s: usize) -> Res {
    let i = s + 3;
    let e = run!(v, i, urlsafe, 220);
    let body = &v.t[i..e];
    if !(20..=220).contains(&body.len()) || !random_enough(body, 10, 3.0) {
        return Res::No;
    }
    let prefixed = [&b"proj-"[..], b"svcacct-", b"admin-", b"None-"]
        .iter()
        .any(|p| body.starts_with(p));
    if (prefixed && body.len() >= 40) || memmem::find(body, b"T3BlbkFJ").is_some() {
        Res::Yes(e)
    } else {
        Res::No
    }
}

/// `sk_live_`/`sk_test_`/`rk_live_`/`rk_test_` + at least 10 alphanumerics.
fn stripe(v: &View, s: usize) -> Res {
    if prev(v.t, s).is_some_and(|b| alnum(b) || b == b'_') {
        return Res::No;
    }
    let i = s + 8;
    let e = run!(v, i, alnum, 247);
    if !(10..=247).contains(&(e - i)) || at!(v, e) == Some(b'_') || !random_enough(&v.t[i..e], 6, 2.5) {
        return Res::No;
    }
    Res::Yes(e)
}

/// `AIza` + exactly 35 URL-safe base64 bytes.
fn google(v: &View, s: usize) -> Res {
    if prev(v.t, s).is_some_and(urlsafe) {
        return Res::No;
    }
    let i = s + 4;
    let e = run!(v, i, urlsafe, 35);
    if e - i != 35 || !random_enough(&v.t[i..e], 10, 3.0) {
        return Res::No;
    }
    Res::Yes(e)
}

/// Whether a PEM label names a private key.
fn private_label(label: &[u8]) -> bool {
    label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")
}

/// Parses `"-----" kw " " label "-----"` at `i` against `t[..lim]`; `lim_is_final` says whether
/// bytes past `lim` can never count. Returns the end of the line's closing dashes.
fn pem_line(t: &[u8], i: usize, kw: &[u8], lim: usize, lim_is_final: bool) -> Res {
    let more = if lim_is_final { Res::No } else { Res::More };
    let get = |j: usize| if j < lim { Some(t[j]) } else { None };
    let mut j = i;
    for &c in b"-----".iter().chain(kw).chain(b" ") {
        match get(j) {
            None => return more,
            Some(b) if b == c => j += 1,
            Some(_) => return Res::No,
        }
    }
    let ls = j;
    loop {
        match get(j) {
            None => return more,
            Some(b'A'..=b'Z' | b'0'..=b'9' | b' ') if j - ls < 64 => j += 1,
            Some(b'-') => break,
            Some(_) => return Res::No,
        }
    }
    if !private_label(&t[ls..j]) {
        return Res::No;
    }
    for _ in 0..5 {
        match get(j) {
            None => return more,
            Some(b'-') => j += 1,
            Some(_) => return Res::No,
        }
    }
    Res::Yes(j)
}

/// A PEM/PGP private key block starting at its `-----BEGIN` at `s`.
fn pem(v: &View, s: usize, memo: &mut Memo) -> Res {
    let t = v.t;
    let n = t.len();
    let header_end = match pem_line(t, s, b"BEGIN", n, v.eof) {
        Res::Yes(e) => e,
        r => return r,
    };
    let reach = v.reach(s, PEM_CAP);
    let window_open = reach == n && !v.eof && v.orig(n) - v.orig(s) < PEM_CAP;
    let mut from = header_end;
    while let Some(f) = next_footer(t, from, memo).filter(|&f| f < reach) {
        match pem_line(t, f, b"END", reach, !window_open) {
            Res::Yes(e) => return Res::Yes(e),
            Res::More => return Res::More,
            _ => from = f + 1,
        }
    }
    if window_open {
        return Res::More;
    }
    let e = body_run_end(t, header_end, memo);
    if e == n && !v.eof {
        Res::Open
    } else {
        Res::Yes(e)
    }
}

/// First `-----END` at or after `from` (memoized: consecutive headers share one search).
fn next_footer(t: &[u8], from: usize, memo: &mut Memo) -> Option<usize> {
    if let Some((f0, at)) = memo.pem_footer {
        if from >= f0 && at.is_none_or(|a| from <= a) {
            return at;
        }
    }
    let at = memmem::find(&t[from..], b"-----END").map(|k| from + k);
    memo.pem_footer = Some((from, at));
    at
}

/// End of the key-body run starting at `from` (memoized like [`next_footer`]).
fn body_run_end(t: &[u8], from: usize, memo: &mut Memo) -> usize {
    if let Some((f0, end)) = memo.pem_run {
        if (f0..=end).contains(&from) {
            return end;
        }
    }
    let end = from + t[from..].iter().take_while(|&&b| is(PEMBODY, b)).count();
    memo.pem_run = Some((from, end));
    end
}

enum Seg {
    End(usize),
    OverCap,
}

/// Reads a run of URL-safe bytes from `i`, noticing when it would pass `reach`.
fn seg(v: &View, i: usize, reach: usize) -> Result<Seg, Res> {
    fn inner(v: &View, i: usize, reach: usize) -> Res {
        let n = v.t.len();
        let mut e = i;
        loop {
            if e == reach && reach < n {
                return if urlsafe(v.t[e]) { Res::Open } else { Res::Yes(e) };
            }
            match at!(v, e) {
                Some(b) if urlsafe(b) => e += 1,
                _ => return Res::Yes(e),
            }
        }
    }
    match inner(v, i, reach) {
        Res::Yes(e) => Ok(Seg::End(e)),
        Res::Open => Ok(Seg::OverCap),
        r => Err(r),
    }
}

/// A JWT: `eyJ…` header, `.`, `ey…`/`ew…` payload, `.`, signature (may be empty).
fn jwt(v: &View, s: usize) -> Res {
    let t = v.t;
    if prev(t, s).is_some_and(urlsafe) {
        return Res::No;
    }
    let reach = v.reach(s, JWT_CAP);
    let mut i = s;
    for k in 0..3 {
        let e = match seg(v, i, reach) {
            Ok(Seg::End(e)) => e,
            Ok(Seg::OverCap) => return jwt_run(v, s),
            Err(r) => return r,
        };
        if k < 2 {
            if e - i < 10 || (k == 1 && !(t[i] == b'e' && matches!(t[i + 1], b'y' | b'w'))) {
                return Res::No;
            }
            if at!(v, e) != Some(b'.') {
                return Res::No;
            }
            if e + 1 >= reach && reach < t.len() {
                return jwt_run(v, s);
            }
            i = e + 1;
        } else {
            i = e;
        }
    }
    Res::Yes(i)
}

fn jwt_run(v: &View, s: usize) -> Res {
    let e = s + v.t[s..].iter().take_while(|&&b| is(JWTRUN, b)).count();
    if e == v.t.len() && !v.eof {
        Res::Open
    } else {
        Res::Yes(e)
    }
}

/// The 40-character AWS secret access key: a base64 token of exactly 40 bytes, with upper case,
/// lower case and digits, at least 4 bits of entropy per byte, and a key name (`aws`, `secret`,
/// `access`, `credential`, `key`) in the 96 bytes before it or later on its line (within 48 bytes). Called for a digit at `j`; a token
/// without any digit (about 1 in 1000 real keys) is not found.
pub fn aws_secret(v: &View, j: usize, memo: &mut Memo, out: &mut Out) {
    let t = v.t;
    let n = t.len();
    // the token around `j`, looked at only as far as a 40-byte key can reach
    let s = b64_run_start(t, j, j.saturating_sub(AWS_SECRET_LEN + 1));
    let mut e = j;
    if j - s <= AWS_SECRET_LEN {
        e = b64_run_end(t, j, s + AWS_SECRET_LEN + 1);
    }
    if j - s > AWS_SECRET_LEN || e - s > AWS_SECRET_LEN {
        // too long to be a key: skip the rest of this token
        e = b64_run_end(t, e, n);
        memo.aws_done = e;
        return;
    }
    memo.aws_done = e;
    if e == n && !v.eof {
        out.hold(s);
        return;
    }
    if e - s != AWS_SECRET_LEN {
        return;
    }
    let tok = &t[s..e];
    let bad_edge = |b: u8| matches!(b, b'_' | b'-' | b'=');
    if prev(t, s).is_some_and(|b| bad_edge(b) && b != b'=') || t.get(e).is_some_and(|&b| bad_edge(b)) {
        return;
    }
    let has = |m: u16| tok.iter().any(|&b| is(m, b));
    if !(has(UPPER) && has(LOWER) && has(DIGIT) && random_enough(tok, 16, 4.0)) {
        return;
    }
    if context_before(t, s, 96, &AWS_WORDS) {
        out.put(s, Builtin::AwsSecretAccessKey.id(), Res::Yes(e));
        return;
    }
    // or a key name later on the same line (`secret = "…"  # AWS secret key`)
    let lim = (e + 48).min(n);
    let eol = t[e..lim].iter().position(|&b| b == b'\n').map_or(lim, |k| e + k);
    if eol == n && !v.eof && n < e + 48 {
        out.hold(s);
    } else if context_before(t, eol, eol - e, &AWS_WORDS) {
        out.put(s, Builtin::AwsSecretAccessKey.id(), Res::Yes(e));
    }
}

#[cfg(test)]
mod tests {
    use crate::scan::tests::found;

    macro_rules! t {
        ($name:ident, $text:expr, $want:expr) => {
            #[test]
            fn $name() {
                let text: String = $text;
                let want: Vec<(&str, String)> = $want
                    .into_iter()
                    .map(|(e, s): (&str, &str)| (e, s.to_string()))
                    .collect();
                let got: Vec<(&str, String)> = found(&text)
                    .into_iter()
                    .map(|(e, s)| (e, s.to_string()))
                    .collect();
                assert_eq!(got, want, "{:?}", text);
            }
        };
    }
    const AKID: &str = "AKIAQ3EGUTDY5WXRMZ7N";
    const AWSSEC: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9vLp4Tks";
    const GHP: &str = "ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio";
    const ANT: &str =
        "sk-ant-api03-Zq8Lr2VbX9mKp4Tn7WcY1dHf6JsQ0aUe3GioRt5PxMzBvC2kNw8LyDjE4hFgSuA-_xQ7rT1mZ9pK3vW6nB0cY5dLfHgAA";
    const OAI: &str =
        "sk-proj-Zq8Lr2VbX9mKp4Tn7WcY1dHf6JsQ0aUe3GioRt5PxMzBvC2kNw8LyDjE4hFgSuAT3BlbkFJxQ7rT1mZ9pK3vW6nB0cY5dLf";

    t!(aws010, format!("id={AKID};"), vec![("AWS_ACCESS_KEY_ID", AKID)]);
    t!(
        aws020,
        "AKIAXXXXXXXXXXXXXXXX AKIAQ3EGUTDY5WXRMZ7N1 xAKIAQ3EGUTDY5WXRMZ7N".to_string(),
        Vec::<(&str, &str)>::new()
    );
    t!(
        aws030,
        format!("aws_secret_access_key = {AWSSEC}\n"),
        vec![("AWS_SECRET_ACCESS_KEY", AWSSEC)]
    );
    t!(aws040, format!("checksum {AWSSEC}"), Vec::<(&str, &str)>::new());
    t!(
        aws050,
        "key: e83c5163316f89bfbde7d9ab23ca2e25604af290 ok".to_string(),
        Vec::<(&str, &str)>::new()
    );
    t!(
        aws060,
        format!("\"SecretAccessKey\": \"{AWSSEC}\""),
        vec![("AWS_SECRET_ACCESS_KEY", AWSSEC)]
    );
    t!(gh010, format!("token {GHP}."), vec![("GITHUB_TOKEN", GHP)]);
    t!(
        gh020,
        "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX ghp_short".to_string(),
        Vec::<(&str, &str)>::new()
    );
    t!(
        ant010,
        format!("ANTHROPIC_API_KEY={ANT}"),
        vec![("ANTHROPIC_API_KEY", ANT)]
    );
    t!(
        oai010,
        format!("OPENAI_API_KEY=\"{OAI}\""),
        vec![("OPENAI_API_KEY", OAI)]
    );
    t!(
        oai020,
        "use sk-learn-compatible-estimators and task-queue".to_string(),
        Vec::<(&str, &str)>::new()
    );
    t!(
        slack010,
        "xoxb-2837461928-3847561029384-Zq8Lr2VbX9mKp4Tn7WcY1dHf".to_string(),
        vec![("SLACK_TOKEN", "xoxb-2837461928-3847561029384-Zq8Lr2VbX9mKp4Tn7WcY1dHf")]
    );
    t!(
        slack020,
        "https://hooks.slack.com/services/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 ok".to_string(),
        vec![(
            "SLACK_TOKEN",
            "hooks.slack.com/services/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"
        )]
    );
    t!(
        stripe010,
        "sk_live_51Hq8Lr2VbX9mKp4Tn7WcY1dHf".to_string(),
        vec![("STRIPE_KEY", "sk_live_51Hq8Lr2VbX9mKp4Tn7WcY1dHf")]
    );
    t!(
        stripe020,
        "pk_live_51Hq8Lr2VbX9mKp4Tn7WcY1dHf sk_test_xxxxxxxxxxxxxxxx".to_string(),
        Vec::<(&str, &str)>::new()
    );
    t!(
        google010,
        "key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW&x".to_string(),
        vec![("GOOGLE_API_KEY", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW")]
    );
    t!(
        jwt010,
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
            .to_string(),
        vec![(
            "JWT",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        )]
    );
    t!(
        jwt020,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0. done".to_string(),
        vec![("JWT", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.")]
    );
    t!(
        jwt030,
        "they key survey eyJustText".to_string(),
        Vec::<(&str, &str)>::new()
    );

    fn pem_block(body_lines: usize) -> String {
        let mut s = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
        for i in 0..body_lines {
            s.push_str(&format!("MIIEowIBAAKCAQEA{:048}\n", i));
        }
        s.push_str("-----END RSA PRIVATE KEY-----");
        s
    }

    #[test]
    fn pem_blocks() {
        let block = pem_block(40);
        let text = format!("key:\n{block}\nthanks.");
        assert_eq!(found(&text), vec![("PRIVATE_KEY", block.as_str())]);
        let gcp = format!("{{\"private_key\": \"{}\"}}", pem_block(3).replace('\n', "\\n"));
        let want = gcp[17..gcp.len() - 2].to_string();
        assert_eq!(found(&gcp), vec![("PRIVATE_KEY", want.as_str())]);
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(found(cert), vec![]);
    }

    #[test]
    fn pem_without_footer_fails_closed() {
        // truncated block: redacted to the end of the body run
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA. Bye";
        assert_eq!(
            found(text),
            vec![(
                "PRIVATE_KEY",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA"
            )]
        );
        // longer than the cap: the whole body run, past the cap
        let long = pem_block(400);
        let text = format!("{long}\nnext. line");
        let got = found(&text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, format!("{long}\nnext"));
    }

    #[test]
    fn aws_example_entropy() {
        assert!(crate::scan::validate::entropy(AWSSEC.as_bytes()) > 4.0);
    }
}
