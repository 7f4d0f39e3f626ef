//! No code: this crate exists so that the guest workspace's `Cargo.lock`
//! pins the published `wstd` package (an async standard library for WASI
//! 0.2 components), whose examples skiff's tests run as unchanged
//! third-party components.
//!
//! Through this dependency the package comes the way any dependency does:
//! downloaded by cargo, checked against the lock file's checksum, cached in
//! the cargo registry. `artifacts/build.rs` asks `cargo metadata` where the
//! package is, then builds its examples (`cargo build --examples --locked`)
//! with the package's own manifest and `Cargo.lock`, exactly as published.
//!
//! The dependency is optional and no build enables it, so building this
//! workspace compiles nothing for it; to move to another wstd release,
//! change the `=` version in `Cargo.toml` and let cargo update the lock file.
