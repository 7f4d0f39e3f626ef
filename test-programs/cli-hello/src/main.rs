//! `cli-hello`: the well-behaved `wasi:cli/command` guest of skiff's tests.
//!
//! stdout, one line each:
//! * `hello from skiff`
//! * `args: <arguments after the program name, space-separated>`
//! * `greeting: <$GREETING>` if that env var is set
//! * `config: <contents>` if `/config/greeting` is readable
//!
//! stderr: `cli-hello: to stderr`.
//!
//! Exit code: the first argument after the program name (`args[1]`, as
//! `wasmtime run cli-hello.wasm 3` passes it), default 0. Rust's std on
//! `wasm32-wasip2` exits through `wasi:cli/exit.exit`, which carries only
//! success or failure: any non-zero code reaches the host as failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("hello from skiff");
    println!("args: {}", args.join(" "));
    if let Ok(greeting) = std::env::var("GREETING") {
        println!("greeting: {greeting}");
    }
    if let Ok(config) = std::fs::read_to_string("/config/greeting") {
        println!("config: {}", config.trim_end());
    }
    eprintln!("cli-hello: to stderr");
    let code = args.first().and_then(|a| a.parse::<u8>().ok()).unwrap_or(0);
    ExitCode::from(code)
}
