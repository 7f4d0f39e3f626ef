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
//! | `json`     | each node fits if the host's `node-json(i)` is the Node object of that node (`metadata.name`), else is `unschedulable("node-json gave no Node for <name>")` |
//! | other/none | `ok`, `fits` for every node                               |

wit_bindgen::generate!({
    path: "../../wit",
    world: "scheduler-filter",
});

#[path = "../../plugin-hostile/src/misbehave.rs"]
mod misbehave;

use misbehave::{ANNOTATION, hoard, spin};

/// Whether the host's JSON for node `index` is that node.
fn json_matches(index: usize, node: &Node) -> Verdict {
    let object = u32::try_from(index)
        .ok()
        .and_then(skiff::plugins::scheduling::node_json)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    match object {
        Some(object) if object["metadata"]["name"] == node.name.as_str() => Verdict::Fits,
        _ => Verdict::Unschedulable(format!("node-json gave no Node for {}", node.name)),
    }
}

struct PluginFilterHostile;

impl Guest for PluginFilterHostile {
    fn init(config: String) -> Result<(), String> {
        misbehave::init(&config)
    }

    fn filter(pod: Pod, nodes: Vec<Node>) -> Result<Vec<Verdict>, String> {
        let hostile = pod.annotations.iter().find(|(key, _)| key == ANNOTATION);
        match hostile.map(|(_, value)| value.as_str()) {
            Some("loop") => spin(),
            Some("alloc") => hoard(),
            Some("trap") => panic!("plugin-filter-hostile: trap requested"),
            Some("error") => Err("plugin error".to_string()),
            Some("json") => Ok(nodes.iter().enumerate().map(|(i, node)| json_matches(i, node)).collect()),
            _ => Ok(nodes.iter().map(|_| Verdict::Fits).collect()),
        }
    }
}

export!(PluginFilterHostile);
