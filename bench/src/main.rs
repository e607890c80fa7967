//! `lxr-bench PATH ITERS READERS`: `READERS` threads each do 100 warm-up iterations, then
//! `ITERS` × { open; read 64 KiB until EOF; close }, timing each. Prints one line:
//! `ops_per_s p50_us p99_us bytes` (aggregate ops/s over the wall time of the timed part).

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::Instant;

fn one(path: &str, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut f = std::fs::File::open(path)?;
    let mut total = 0;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(iters), Some(readers)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|v| v.parse::<usize>().ok()),
        args.get(3).and_then(|v| v.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: lxr-bench PATH ITERS READERS");
        std::process::exit(2);
    };
    let barrier = Arc::new(Barrier::new(readers + 1));
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || -> std::io::Result<(Vec<u32>, usize)> {
                let mut buf = vec![0u8; 65536];
                let mut bytes = 0;
                for _ in 0..100 {
                    bytes = one(&path, &mut buf)?;
                }
                barrier.wait();
                let mut lat = Vec::with_capacity(iters);
                for _ in 0..iters {
                    let t = Instant::now();
                    one(&path, &mut buf)?;
                    lat.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                }
                Ok((lat, bytes))
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let (ops, p50, p99, bytes) = lxr_bench::collect("lxr-bench", start, handles);
    println!("{ops:.0} {p50:.1} {p99:.1} {}", bytes.unwrap_or(0));
}
