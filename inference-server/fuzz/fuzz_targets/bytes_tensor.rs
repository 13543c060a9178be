//! BYTES tensors in the binary data extension: length-prefixed elements of
//! any length prefix (0xFFFFFFFF included), for a fuzzed element count.
#![no_main]

use aimass_inference_server::protocol::{InferRequest, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((count, binary)) = data.split_first() else {
        return;
    };
    let header = serde_json::json!({"inputs": [{
        "name": "text",
        "shape": [count],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": binary.len()}
    }]});
    if let Ok(request) = serde_json::from_value::<InferRequest>(header) {
        let _ = decode(request, binary, &aimass_inference_server_fuzz::text());
    }
});
