//! The Wasm guests skiff's tests run, as paths to built artifacts.
//!
//! The guests live in `test-programs/`, a Cargo workspace of their own built
//! for `wasm32-wasip2` (never part of the host workspace). This crate's
//! build script builds that workspace in release with a nested
//! `cargo build --release --target wasm32-wasip2` into
//! `$CARGO_TARGET_DIR/wasm-guests` (or `$OUT_DIR/wasm-guests` when
//! `CARGO_TARGET_DIR` is unset), then generates one constant per guest
//! holding the absolute path of its `.wasm` file. A test reads the file it
//! needs:
//!
//! ```no_run
//! let component = std::fs::read(skiff_test_programs::HTTP_HELLO)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! | constant          | what it is                                                          |
//! |-------------------|---------------------------------------------------------------------|
//! | `HTTP_HELLO`      | `wasi:http/proxy`: greeting, path, `$GREETING`, `/config/greeting`; `/sleep?ms=N`; `/count` (per-instance counter) |
//! | `HTTP_SPIN`       | `wasi:http/proxy` whose handler loops forever                        |
//! | `HTTP_HOG`        | `wasi:http/proxy` whose handler allocates until it fails            |
//! | `CLI_HELLO`       | `wasi:cli/command`: prints greeting, args, `$GREETING`, `/config/greeting`, `$LINES` numbered lines; appends its args to `$APPEND_TO`; exits with `args[1]` |
//! | `CLI_SPIN`        | `wasi:cli/command` that loops forever                               |
//! | `CLI_HOG`         | `wasi:cli/command` that allocates until it fails                    |
//! | `CLI_NET_HOG`     | `wasi:cli/command` that opens sockets without end, resolves a name N times, streams an endless request body, or sends one UDP datagram and prints the reply, as `args[1]` says |
//! | `BAD_IMPORT`      | a component importing `skiff:test/nothing`, which no host provides  |
//! | `NOT_A_COMPONENT` | a core Wasm module (a WASI preview 1 style `_start`), not a component |
//! | `PLUGIN_HOSTILE`  | an `admission-validate` plugin that loops, allocates, traps, denies or errs as the object's `skiff.dev/hostile` annotation says; its `init` refuses `{"reject": true}` and loops on `{"initLoop": true}` |
//! | `PLUGIN_FILTER_HOSTILE` | a `scheduler-filter` plugin that does the same by the pod's annotation (and, for an admission stage, the wrong world) |
//!
//! Each guest's crate doc in `test-programs/<name>/src` says exactly what it
//! prints and replies. A new crate in that workspace gets its constant
//! (its name upper-cased, `-` as `_`) without touching this crate.
//!
//! Third-party components, built unchanged: the examples of the published
//! `wstd` crate (0.6.8, pinned with its checksum by the guest workspace's
//! `Cargo.lock` through `test-programs/wstd-examples`). The build script
//! builds them from the package cargo unpacked, with the package's own
//! manifest and `Cargo.lock` (`cargo build --release --examples --locked`),
//! into `wstd/` under the guests' target directory. Each is `WSTD_` and the
//! example's name upper-cased; what they do is in their source, the
//! package's `examples/`. They import WASI 0.2.12 interfaces; the two HTTP
//! servers export `wasi:http/incoming-handler@0.2.12` and also
//! `wasi:cli/run@0.2.0`, the others only `wasi:cli/run@0.2.0`.
//!
//! | constant                  | what it is                                                     |
//! |---------------------------|----------------------------------------------------------------|
//! | `WSTD_HTTP_SERVER`        | HTTP handler (`#[wstd::http_server]`): `/` greets; `/wait-response`, `/wait-body`, `/stream-body`, `/echo`, `/echo-headers`, `/echo-trailers`, `/response-status`, `/response-fail`, `/response-body-fail`; anything else 404 |
//! | `WSTD_HTTP_SERVER_PROXY`  | HTTP handler: forwards `/proxy/<rest>` to `$TARGET_URL<rest>` with outgoing HTTP; anything else 404 |
//! | `WSTD_HTTP_CLIENT`        | command: `<url>` with `--method`, `--header`, `--body` (stdin), timeouts; status and headers to stderr, body to stdout |
//! | `WSTD_COMPLEX_HTTP_CLIENT`| command: the same with trailers and more options               |
//! | `WSTD_TCP_ECHO_SERVER`    | command: listens on `127.0.0.1:8080` (`wasi:sockets`), echoes each connection |
//! | `WSTD_TCP_STREAM_CLIENT`  | command: connects to `args[1]`, sends `ping\n`, reads to the end |
//!
//! The build needs the `wasm32-wasip2` target (`rustup target add
//! wasm32-wasip2`, or `cargo xtask build-wasm`, which adds it); the build
//! script says so when it is missing.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

#[cfg(test)]
mod tests {
    #[test]
    fn every_artifact_is_a_wasm_file() {
        for path in [
            super::HTTP_HELLO,
            super::HTTP_SPIN,
            super::HTTP_HOG,
            super::CLI_HELLO,
            super::CLI_SPIN,
            super::CLI_HOG,
            super::BAD_IMPORT,
            super::NOT_A_COMPONENT,
            super::PLUGIN_HOSTILE,
            super::PLUGIN_FILTER_HOSTILE,
            super::WSTD_HTTP_SERVER,
            super::WSTD_HTTP_SERVER_PROXY,
            super::WSTD_HTTP_CLIENT,
            super::WSTD_COMPLEX_HTTP_CLIENT,
            super::WSTD_TCP_ECHO_SERVER,
            super::WSTD_TCP_STREAM_CLIENT,
        ] {
            let bytes = std::fs::read(path).unwrap_or_default();
            assert!(bytes.starts_with(b"\0asm"), "{path} is not a Wasm file");
        }
    }

    #[test]
    fn components_and_core_modules_are_told_apart_by_their_layer() {
        let component = [0x0d, 0x00, 0x01, 0x00];
        let core = [0x01, 0x00, 0x00, 0x00];
        let header = |path: &str| std::fs::read(path).unwrap_or_default().get(4..8).map(<[u8]>::to_vec);
        assert_eq!(header(super::HTTP_HELLO).as_deref(), Some(&component[..]));
        assert_eq!(header(super::CLI_HELLO).as_deref(), Some(&component[..]));
        assert_eq!(header(super::BAD_IMPORT).as_deref(), Some(&component[..]));
        assert_eq!(header(super::WSTD_HTTP_SERVER).as_deref(), Some(&component[..]));
        assert_eq!(header(super::WSTD_HTTP_SERVER_PROXY).as_deref(), Some(&component[..]));
        assert_eq!(header(super::WSTD_HTTP_CLIENT).as_deref(), Some(&component[..]));
        assert_eq!(header(super::WSTD_TCP_ECHO_SERVER).as_deref(), Some(&component[..]));
        assert_eq!(header(super::NOT_A_COMPONENT).as_deref(), Some(&core[..]));
    }
}
