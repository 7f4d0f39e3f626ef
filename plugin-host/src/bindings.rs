//! The host side of `wit/plugins.wit`: one `bindgen!` per world. The
//! worlds share the `types`, `scheduling` and `admission` interfaces, so
//! later worlds reuse the first world's generated types for them (`with`),
//! and a `Pod` is one type whichever world it goes to.

#![allow(missing_docs, missing_debug_implementations, clippy::all)]

pub mod filter {
    wasmtime::component::bindgen!({
        world: "scheduler-filter",
        path: "../wit",
    });
}

pub mod score {
    wasmtime::component::bindgen!({
        world: "scheduler-score",
        path: "../wit",
        with: {
            "skiff:plugins/types": super::filter::skiff::plugins::types,
            "skiff:plugins/scheduling": super::filter::skiff::plugins::scheduling,
        },
    });
}

pub mod validate {
    wasmtime::component::bindgen!({
        world: "admission-validate",
        path: "../wit",
    });
}

pub mod mutate {
    wasmtime::component::bindgen!({
        world: "admission-mutate",
        path: "../wit",
        with: {
            "skiff:plugins/admission": super::validate::skiff::plugins::admission,
        },
    });
}

pub use filter::skiff::plugins::scheduling;
pub use filter::skiff::plugins::types;
pub use validate::skiff::plugins::admission;
