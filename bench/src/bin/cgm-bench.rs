//! `cgm-bench TRANSPORT TARGET OP CGROUP KEY VALUE ITERS CLIENTS`: round trips of cgmanager's
//! GetValue / SetValue.
//!
//! * TRANSPORT `peer` (TARGET = socket path), `bus` (TARGET = bus address), or `direct`
//!   (TARGET = the cgroup directory: read/write the file itself, the floor).
//! * OP `get`, `set` (writes VALUE) or `ping` (the D-Bus round trip alone).
//!
//! Each client is a thread with its own connection (as a real client keeps one) doing 200
//! warm-up calls, then ITERS timed calls. Prints `calls_per_s p50_us p99_us`.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use cgmanager_dbus::{connect, ManagerProxy, Transport};

struct Job {
    transport: String,
    target: String,
    op: String,
    cgroup: String,
    key: String,
    value: String,
    iters: usize,
}

fn client(job: Arc<Job>, barrier: Arc<Barrier>) -> Result<Vec<u32>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let proxy = match job.transport.as_str() {
            "direct" => None,
            t => {
                let tr = if t == "peer" {
                    Transport::Peer(job.target.clone())
                } else {
                    Transport::Bus(Some(job.target.clone()))
                };
                let conn = connect(&tr).await.map_err(|e| format!("connect: {e}"))?;
                Some(ManagerProxy::new(&conn).await.map_err(|e| e.to_string())?)
            }
        };
        let file = std::path::Path::new(&job.target).join(&job.key);
        let call = || async {
            match (&proxy, job.op.as_str()) {
                (Some(p), "ping") => p.ping(0).await.map_err(|e| format!("{e:?}")),
                (Some(p), "get") => p
                    .get_value("memory", &job.cgroup, &job.key)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                (Some(p), _) => p
                    .set_value("memory", &job.cgroup, &job.key, &job.value)
                    .await
                    .map_err(|e| format!("{e:?}")),
                (None, "get") => std::fs::read(&file).map(|_| ()).map_err(|e| e.to_string()),
                (None, _) => std::fs::write(&file, &job.value).map_err(|e| e.to_string()),
            }
        };
        for _ in 0..200 {
            call().await?;
        }
        barrier.wait();
        let mut lat = Vec::with_capacity(job.iters);
        for _ in 0..job.iters {
            let t = Instant::now();
            call().await?;
            lat.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        }
        Ok(lat)
    })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 9 {
        eprintln!("usage: cgm-bench peer|bus|direct TARGET get|set CGROUP KEY VALUE ITERS CLIENTS");
        std::process::exit(2);
    }
    let (Ok(iters), Ok(clients)) = (a[7].parse::<usize>(), a[8].parse::<usize>()) else {
        eprintln!("cgm-bench: ITERS and CLIENTS are numbers");
        std::process::exit(2);
    };
    let job = Arc::new(Job {
        transport: a[1].clone(),
        target: a[2].clone(),
        op: a[3].clone(),
        cgroup: a[4].clone(),
        key: a[5].clone(),
        value: a[6].clone(),
        iters,
    });
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (job, barrier) = (job.clone(), barrier.clone());
            std::thread::spawn(move || client(job, barrier).map(|lat| (lat, ())))
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let (ops, p50, p99, _) = lxr_bench::collect("cgm-bench", start, handles);
    println!("{ops:.0} {p50:.1} {p99:.1}");
}
