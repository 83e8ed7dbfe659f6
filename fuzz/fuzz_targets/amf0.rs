//! AMF0: decoding arbitrary bytes never panics, and whatever decodes
//! re-encodes to exactly the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let mut again = Vec::with_capacity(data.len());
        amf0::encode_all(&values, &mut again);
        assert_eq!(again, data, "AMF0 round trip changed the bytes");
    }
});
