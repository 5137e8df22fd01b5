//! Cache throughput: `len` (lock, view, unlock: the fixed cost of any operation), `get`
//! (`get_into`) and `update` on one thread and on two threads sharing one cache, reported
//! as the median of several timed rounds, in million operations per second (wall clock)
//! and CPU nanoseconds per operation.
//!
//! `cargo bench -p uwsgi-server-state --bench cache` (plain harness: no criterion, so the
//! same binary can be kept and run again beside a later build; see docs/server-state.md).
//! `UWSGI_BENCH_ROUNDS` (default 9) and `UWSGI_BENCH_OPS` (per thread per round, default
//! 2 000 000) tune it; `UWSGI_BENCH_ONLY=get1` (workload and thread count) runs one case.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use uwsgi_server_state::cache::{Cache, CacheConfig};

const KEYS: usize = 1000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cache() -> Cache {
    let mut config = CacheConfig::new("bench", 2048);
    config.blocksize = 256;
    config.keysize = 64;
    config.hashsize = 4096;
    let cache = Cache::new(config).expect("bench cache");
    for key in keys() {
        cache.update(&key, &[7; 100], 0, 0).expect("fill");
    }
    cache
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key-{i:06}").into_bytes())
        .collect()
}

#[derive(Clone, Copy)]
enum Workload {
    Len,
    Get,
    Update,
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Runs `ops` operations on `threads` threads at once; returns Mops/s over all threads
/// (wall clock) and the CPU nanoseconds per operation (summed over the threads: less
/// disturbed by other load on the machine than the wall clock).
fn round(cache: &Arc<Cache>, workload: Workload, threads: usize, ops: usize) -> (f64, f64) {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cache = Arc::clone(cache);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let keys = keys();
                let value = [u8::try_from(t).unwrap_or(0); 100];
                let mut buffer = Vec::with_capacity(256);
                barrier.wait();
                let cpu = thread_cpu();
                for i in 0..ops {
                    let key = &keys[(i * 7 + t * 13) % KEYS];
                    match workload {
                        Workload::Len => {
                            black_box(cache.len());
                        }
                        Workload::Get => {
                            black_box(cache.get_into(key, 0, &mut buffer));
                        }
                        Workload::Update => {
                            black_box(cache.update(key, &value, 0, 0).is_ok());
                        }
                    }
                }
                thread_cpu() - cpu
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let cpu: f64 = handles
        .into_iter()
        .map(|handle| handle.join().expect("bench thread"))
        .sum();
    let seconds = start.elapsed().as_secs_f64();
    let total = (threads * ops) as f64;
    (total / seconds / 1e6, cpu / total * 1e9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run a
    // tiny round then, so the harness is exercised without taking time.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick {
        1
    } else {
        env("UWSGI_BENCH_ROUNDS", 9)
    };
    let ops = if quick {
        1000
    } else {
        env("UWSGI_BENCH_OPS", 2_000_000)
    };
    let cache = Arc::new(cache());
    for (name, workload) in [
        ("len", Workload::Len),
        ("get", Workload::Get),
        ("update", Workload::Update),
    ] {
        for threads in [1, 2] {
            let case = format!("{name}{threads}");
            if std::env::var("UWSGI_BENCH_ONLY").is_ok_and(|only| only != case) {
                continue;
            }
            let (wall, cpu): (Vec<f64>, Vec<f64>) = (0..rounds)
                .map(|_| round(&cache, workload, threads, ops))
                .unzip();
            println!(
                "cache {name:<6} threads={threads}  median {:7.2} Mops/s (min {:6.2}, max {:6.2})  median CPU {:6.1} ns/op (min {:6.1})  {rounds} rounds",
                median(wall.clone()),
                wall.iter().copied().fold(f64::INFINITY, f64::min),
                wall.iter().copied().fold(0.0, f64::max),
                median(cpu.clone()),
                cpu.iter().copied().fold(f64::INFINITY, f64::min),
            );
        }
    }
}
