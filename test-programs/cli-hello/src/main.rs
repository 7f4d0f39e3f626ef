//! `cli-hello`: the well-behaved `wasi:cli/command` guest of skiff's tests.
//!
//! stdout, one line each:
//! * `hello from skiff`
//! * `args: <arguments after the program name, space-separated>`
//! * `greeting: <$GREETING>` if that env var is set
//! * `config: <contents>` if `/config/greeting` is readable
//! * `line 1` … `line N` if `$LINES` is a number N (log volume)
//!
//! stderr: `cli-hello: to stderr`.
//!
//! If `$APPEND_TO` names a file, the arguments line (without `args: `) is
//! appended to it first, creating it if need be; a write that fails is
//! reported on stderr and the exit code is 1. (For writable volumes, and
//! for the order containers ran in.)
//!
//! Exit code: the first argument after the program name (`args[1]`, as
//! `wasmtime run cli-hello.wasm 3` passes it), default 0. Rust's std on
//! `wasm32-wasip2` exits through `wasi:cli/exit.exit`, which carries only
//! success or failure: any non-zero code reaches the host as failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(path) = std::env::var("APPEND_TO")
        && let Err(error) = append(&path, &args.join(" "))
    {
        eprintln!("cli-hello: cannot append to {path}: {error}");
        return ExitCode::FAILURE;
    }
    println!("hello from skiff");
    println!("args: {}", args.join(" "));
    if let Ok(greeting) = std::env::var("GREETING") {
        println!("greeting: {greeting}");
    }
    if let Ok(config) = std::fs::read_to_string("/config/greeting") {
        println!("config: {}", config.trim_end());
    }
    let lines = std::env::var("LINES").ok().and_then(|n| n.parse::<u32>().ok());
    for i in 1..=lines.unwrap_or(0) {
        println!("line {i}");
    }
    eprintln!("cli-hello: to stderr");
    let code = args.first().and_then(|a| a.parse::<u8>().ok()).unwrap_or(0);
    ExitCode::from(code)
}

/// Appends `line` to the file at `path` (read and rewritten whole, which
/// needs nothing of WASI but reads and writes).
fn append(path: &str, line: &str) -> std::io::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    text.push_str(line);
    text.push('\n');
    std::fs::write(path, text)
}
