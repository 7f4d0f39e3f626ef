//! `cli-hog`: a `wasi:cli/command` guest that allocates 1 MiB chunks,
//! writing every byte of each, until an allocation fails, then aborts (a
//! trap). Each MiB it gets is counted on stdout (`hoarded N MiB`) so a test
//! can see how far it got before the host's memory limit stopped it.

use std::hint::black_box;

const CHUNK: usize = 1 << 20;

fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(CHUNK).is_err() || hoard.try_reserve(1).is_err() {
            eprintln!("cli-hog: allocation failed after {} MiB", hoard.len());
            std::process::abort();
        }
        chunk.resize(CHUNK, 0xa5);
        hoard.push(black_box(chunk));
        println!("hoarded {} MiB", hoard.len());
    }
}
