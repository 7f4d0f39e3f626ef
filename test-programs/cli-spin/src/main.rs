//! `cli-spin`: a `wasi:cli/command` guest that prints `spinning` and then
//! loops forever without yielding, so only the host's CPU limit or a kill
//! stops it.

use std::hint::black_box;
use std::io::Write;

fn main() {
    println!("spinning");
    let _ = std::io::stdout().flush();
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}
