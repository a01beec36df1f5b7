//! Cost of one rate-limit check (`RateLimiter::allow`), with rates never reached, as a
//! request pays it with `[rate_limits]` on (the time read once, as the UDP socket worker
//! reads it once per round of reads).
//!
//! - `rate_limit/allow/one_address`: one client address, its slot always in cache.
//! - `rate_limit/allow/1M_addresses_default_table`: addresses drawn uniformly from a
//!   million, in the default table (262,144 slots, 8 MiB): a likely cache miss on the
//!   slot, and evictions as addresses come back.
//!
//! Run: `cargo bench -p tracker_common --bench rate_limit`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use tracker_common::net::rate_limit::{BucketRule, Limited, MAX_BURST, RateLimiter};

fn limiter() -> RateLimiter {
    let rule = Some(BucketRule {
        rate_per_sec: 1_000_000,
        burst: MAX_BURST,
    });
    RateLimiter::new(1 << 18, [rule, rule, rule])
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/allow");
    let one = limiter();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let now = Instant::now();
    group.bench_function("one_address", |b| {
        b.iter(|| one.allow(Limited::Announce, black_box(ip), now));
    });
    let many = limiter();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let addresses: Vec<IpAddr> = (0..1 << 20)
        .map(|_| {
            IpAddr::V4(Ipv4Addr::from(
                rng.random_range(0..1_000_000u32) + 0x0a00_0000,
            ))
        })
        .collect();
    let mut next = 0usize;
    group.bench_function("1M_addresses_default_table", |b| {
        b.iter(|| {
            next = (next + 1) & ((1 << 20) - 1);
            let ip = addresses.get(next).copied().unwrap_or(ip);
            many.allow(Limited::Announce, black_box(ip), now)
        });
    });
    group.finish();
}

criterion_group!(rate_limit, benches);
criterion_main!(rate_limit);
