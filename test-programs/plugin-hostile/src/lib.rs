//! `plugin-hostile`: a `skiff:plugins/admission-validate` plugin that
//! misbehaves on request, for the host's limit and failure-policy tests.
//!
//! `init(config)`, config being JSON:
//!
//! | config               | result                                  |
//! |----------------------|-----------------------------------------|
//! | `"reject": true`     | `err("config rejected: reject is true")` |
//! | `"initLoop": true`   | loops forever                           |
//! | anything else        | `ok`                                    |
//!
//! `validate(request)` reads the object's annotation `skiff.dev/hostile`:
//!
//! | annotation | result                                                    |
//! |------------|-----------------------------------------------------------|
//! | `loop`     | loops forever                                             |
//! | `alloc`    | allocates 1 MiB chunks, writing every byte, until an allocation fails, then aborts (a trap) |
//! | `trap`     | panics (a trap; the message goes to stderr)               |
//! | `deny`     | `ok(denied({message: "hostile says no", code: none}))`    |
//! | `error`    | `err("plugin error")`                                     |
//! | other/none | `ok(allowed)` (also for a delete, which has no object)    |

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "admission-validate",
});

use skiff::plugins::admission::Denial;

mod misbehave;

use misbehave::{ANNOTATION, hoard, spin};

struct PluginHostile;

impl Guest for PluginHostile {
    fn init(config: String) -> Result<(), String> {
        misbehave::init(&config)
    }

    fn validate(request: Request) -> Result<Verdict, String> {
        let object: Value = request
            .object
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        match object["metadata"]["annotations"][ANNOTATION].as_str() {
            Some("loop") => spin(),
            Some("alloc") => hoard(),
            Some("trap") => panic!("plugin-hostile: trap requested"),
            Some("deny") => Ok(Verdict::Denied(Denial {
                message: "hostile says no".to_string(),
                code: None,
            })),
            Some("error") => Err("plugin error".to_string()),
            _ => Ok(Verdict::Allowed),
        }
    }
}

export!(PluginHostile);
