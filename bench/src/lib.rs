//! What the benchmark programs share: joining the worker threads and summing up latencies.

use std::time::Instant;

/// A worker thread: its latencies in ns and one more value, or why it failed.
pub type Worker<T, E> = std::thread::JoinHandle<Result<(Vec<u32>, T), E>>;

/// Join the workers (each returns its latencies in ns, plus a value), exit on the first
/// failure, and return (calls per second since `start`, p50 µs, p99 µs, the last value).
pub fn collect<T, E: std::fmt::Display>(
    prog: &str,
    start: Instant,
    handles: Vec<Worker<T, E>>,
) -> (f64, f64, f64, Option<T>) {
    let mut all = Vec::new();
    let mut last = None;
    for h in handles {
        match h.join() {
            Ok(Ok((lat, v))) => {
                all.extend(lat);
                last = Some(v);
            }
            Ok(Err(e)) => {
                eprintln!("{prog}: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("{prog}: a worker panicked");
                std::process::exit(1);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    (all.len() as f64 / wall, pct(0.50), pct(0.99), last)
}
