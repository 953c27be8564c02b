//! A driver for profilers (`perf record`, `valgrind --tool=callgrind`): scans one file `N` times.
//!
//! `cargo run --release --manifest-path benches/rust/Cargo.toml --example scan_loop -- FILE [N [CHUNK]]`: with
//! `CHUNK`, the text goes through a stream in pieces of `CHUNK` bytes instead of one `scan`.

use _core::scan::{Rules, Scanner};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scan_loop FILE [N]");
    let n: usize = args.next().map_or(20, |s| s.parse().expect("N is a number"));
    let chunk: Option<usize> = args.next().map(|s| s.parse().expect("CHUNK is a number"));
    let text = std::fs::read_to_string(&path).expect("readable UTF-8 file");
    let scanner = Scanner::new(&Rules::default()).unwrap();
    let (mut found, mut best, mut total) = (0, f64::INFINITY, 0.0);
    for _ in 0..n {
        let t0 = std::time::Instant::now();
        found = match chunk {
            None => scanner.scan(std::hint::black_box(&text)).len(),
            Some(size) => {
                let mut st = scanner.stream("");
                let (mut out, mut found) = (String::new(), Vec::new());
                for piece in text.as_bytes().chunks(size.max(1)) {
                    st.feed_bytes(piece, &mut out, &mut found).unwrap();
                    out.clear();
                }
                st.finish(&mut out, &mut found);
                found.len()
            }
        };
        let dt = t0.elapsed().as_secs_f64();
        best = best.min(dt);
        total += dt;
    }
    println!(
        "{found} findings per scan, best {:.1} MB/s, mean {:.1} MB/s",
        text.len() as f64 / best / 1e6,
        (text.len() * n) as f64 / total / 1e6
    );
}
