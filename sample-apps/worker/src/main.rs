//! worker: a `wasi:cli/command` component run to completion, as a
//! Kubernetes Job. It prints a few lines (they become the pod's logs),
//! does a small computation, and exits 0.

fn main() {
    let name = std::env::var("WORKER_NAME").unwrap_or_else(|_| "worker".to_string());
    println!("{name}: starting");
    let items = 1..=10u64;
    let mut total = 0;
    for item in items {
        total += item * item;
        println!("{name}: processed item {item}");
    }
    println!("{name}: sum of squares 1..=10 is {total}");
    println!("{name}: done");
}
