//! Whole-text throughput and per-chunk stream cost of the scanner, without Python in the way.
//!
//! Corpora: `prose` (generated English, no entities), `pii-dense` and `code` read from files that
//! `benches/bench_scan.py --dump DIR` writes (skipped when absent), so both benches use the same
//! bytes. `cargo bench --manifest-path benches/rust/Cargo.toml`, optionally with
//! `SLUICEGATE_BENCH_CORPORA=DIR`.

use std::hint::black_box;

use _core::scan::{Rules, Scanner};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "this", "are", "or", "from", "at", "which", "but", "have", "an", "they", "you", "were", "there", "been", "one",
    "all", "we", "their", "has", "would", "when", "request", "model", "answer", "customer", "support", "invoice",
    "refund", "shipping", "account", "password", "review", "summary", "meeting", "schedule",
];

fn prose(size: usize) -> String {
    let mut s = String::with_capacity(size + 32);
    let mut x: u64 = 7;
    let mut k = 0;
    while s.len() < size {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        k += 1;
        s.push_str(if k % 12 == 0 { ". " } else { " " });
    }
    s.truncate(size);
    s
}

fn corpora() -> Vec<(String, String)> {
    let mut out = vec![("prose".to_string(), prose(1 << 20))];
    if let Ok(dir) = std::env::var("SLUICEGATE_BENCH_CORPORA") {
        for name in ["pii-dense", "code"] {
            if let Ok(text) = std::fs::read_to_string(format!("{dir}/{name}.txt")) {
                out.push((name.to_string(), text));
            }
        }
    }
    out
}

fn scan(c: &mut Criterion) {
    let scanner = Scanner::new(&Rules::default()).unwrap();
    let mut g = c.benchmark_group("scan");
    for (name, text) in corpora() {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&name), &text, |b, t| {
            b.iter(|| scanner.scan(black_box(t)))
        });
    }
    g.finish();
}

fn stream(c: &mut Criterion) {
    let scanner = Scanner::new(&Rules::default()).unwrap();
    let text = prose(64 * 1024);
    let mut g = c.benchmark_group("stream-chunk");
    for size in [1usize, 4, 16, 64] {
        let chunks: Vec<&str> = text
            .as_bytes()
            .chunks(size)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        g.throughput(Throughput::Elements(chunks.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &chunks, |b, chunks| {
            b.iter(|| {
                let mut st = scanner.stream("[REDACTED:{entity}]");
                let (mut out, mut found) = (String::new(), Vec::new());
                for ch in chunks {
                    st.feed(ch, &mut out, &mut found).unwrap();
                    out.clear();
                }
                st.finish(&mut out, &mut found);
                out
            })
        });
    }
    g.finish();
}

criterion_group!(benches, scan, stream);
criterion_main!(benches);
