//! Reading a tracker's `/metrics` in the integration tests.

use prometheus_parse::{Scrape, Value};

/// The value of the one sample of `name` whose labels include `labels`.
///
/// # Panics
/// There is not exactly one such sample, or it is not a number: a failed test.
pub fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {:?}", scrape.samples);
    match found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected value {other:?}"),
    }
}

/// Checks `shoal_errors_total` by cause: `bad_request` as given, the other causes 0.
///
/// # Panics
/// A count differs: a failed test.
pub fn expect_errors(scrape: &Scrape, bad_request: f64) {
    for (cause, n) in [
        ("bad_request", bad_request),
        ("access_denied", 0.0),
        ("dropped", 0.0),
        ("rejected_by_limits", 0.0),
    ] {
        assert_eq!(
            sample(scrape, "shoal_errors_total", &[("cause", cause)]),
            n,
            "{cause}"
        );
    }
}
