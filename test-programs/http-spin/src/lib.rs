//! `http-spin`: a `wasi:http/proxy` guest whose handler never returns and
//! never yields, so only the host's CPU limit (epoch or fuel) can stop it.

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct HttpSpin;

impl Guest for HttpSpin {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut turns: u64 = 0;
        loop {
            turns = black_box(turns.wrapping_add(1));
        }
    }
}

wasi::http::proxy::export!(HttpSpin);
