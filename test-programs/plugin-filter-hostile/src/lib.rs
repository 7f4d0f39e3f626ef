//! `plugin-filter-hostile`: a `skiff:plugins/scheduler-filter` plugin that
//! misbehaves on request, for the host's scheduler-plugin tests; being a
//! Filter, it is also the wrong world for any other stage.
//!
//! `init(config)` behaves as `plugin-hostile`'s: `"reject": true` returns
//! `err("config rejected: reject is true")`, `"initLoop": true` loops
//! forever, anything else is `ok`.
//!
//! `filter(pod, nodes)` reads the pod's annotation `skiff.dev/hostile`:
//!
//! | annotation | result                                                    |
//! |------------|-----------------------------------------------------------|
//! | `loop`     | loops forever                                             |
//! | `alloc`    | allocates 1 MiB chunks, writing every byte, until an allocation fails, then aborts (a trap) |
//! | `trap`     | panics (a trap; the message goes to stderr)               |
//! | `error`    | `err("plugin error")`                                     |
//! | other/none | `ok`, `fits` for every node                               |

use std::hint::black_box;

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "scheduler-filter",
});

const ANNOTATION: &str = "skiff.dev/hostile";
const CHUNK: usize = 1 << 20;

/// Spins until the host stops it (fuel or epoch deadline).
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Takes memory until the host's limit refuses it, then traps.
fn hoard() -> ! {
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

struct PluginFilterHostile;

impl Guest for PluginFilterHostile {
    fn init(config: String) -> Result<(), String> {
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        if config["reject"] == Value::Bool(true) {
            return Err("config rejected: reject is true".to_string());
        }
        if config["initLoop"] == Value::Bool(true) {
            spin();
        }
        Ok(())
    }

    fn filter(pod: Pod, nodes: Vec<Node>) -> Result<Vec<Verdict>, String> {
        let hostile = pod.annotations.iter().find(|(key, _)| key == ANNOTATION);
        match hostile.map(|(_, value)| value.as_str()) {
            Some("loop") => spin(),
            Some("alloc") => hoard(),
            Some("trap") => panic!("plugin-filter-hostile: trap requested"),
            Some("error") => Err("plugin error".to_string()),
            _ => Ok(nodes.iter().map(|_| Verdict::Fits).collect()),
        }
    }
}

export!(PluginFilterHostile);
