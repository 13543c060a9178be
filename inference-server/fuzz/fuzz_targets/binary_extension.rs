//! The binary data extension: the first two bytes say how long the JSON
//! header is (as `Inference-Header-Content-Length` does), the rest is the
//! header and the binary tensor data, split as the server splits them.
#![no_main]

use aimass_inference_server::protocol::{InferRequest, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((length, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let length = usize::from(u16::from_le_bytes(*length));
    let Some((json, binary)) = body.split_at_checked(length) else {
        return;
    };
    if let Ok(request) = serde_json::from_slice::<InferRequest>(json) {
        let _ = decode(request, binary, &aimass_inference_server_fuzz::tabular());
    }
});
