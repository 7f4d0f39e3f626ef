//! `http-hog`: a `wasi:http/proxy` guest whose handler allocates 1 MiB
//! chunks, writing every byte of each, until an allocation fails; then it
//! aborts (a trap). It never sends a response, so the host's memory limit
//! (a trapping or failing `memory.grow`) is what the test observes.

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const CHUNK: usize = 1 << 20;

struct HttpHog;

impl Guest for HttpHog {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
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
}

wasi::http::proxy::export!(HttpHog);
