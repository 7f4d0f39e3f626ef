//! The misbehaviour both hostile plugins share (the filter includes this
//! file by path).

use std::hint::black_box;

use serde_json::Value;

/// The annotation that says how to misbehave.
pub const ANNOTATION: &str = "skiff.dev/hostile";
const CHUNK: usize = 1 << 20;

/// Spins until the host stops it (fuel or epoch deadline).
pub fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Takes memory until the host's limit refuses it, then traps.
pub fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(CHUNK).is_err() || hoard.try_reserve(1).is_err() {
            std::process::abort();
        }
        chunk.resize(CHUNK, 0xa5);
        hoard.push(black_box(chunk));
    }
}

/// `init`: refuses `{"reject": true}`, loops on `{"initLoop": true}`.
pub fn init(config: &str) -> Result<(), String> {
    let config: Value = serde_json::from_str(config).unwrap_or(Value::Null);
    if config["reject"] == Value::Bool(true) {
        return Err("config rejected: reject is true".to_string());
    }
    if config["initLoop"] == Value::Bool(true) {
        spin();
    }
    Ok(())
}
