//! Any body as a JSON inference request: parsing and decoding refuse or
//! accept it, never panic.
#![no_main]

use aimass_inference_server::protocol::{InferRequest, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<InferRequest>(body) {
        let _ = decode(request, &[], &aimass_inference_server_fuzz::tabular());
    }
});
