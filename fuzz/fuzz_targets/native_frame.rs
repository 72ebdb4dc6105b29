//! Native frames and requests from arbitrary bytes: splitting frames off a receive
//! buffer, decoding every request (Produce through its layout too), never panicking
//! and never allocating past the limits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strand_protocol::native::{split_frame_mut, ApiKey, Limits, ProduceLayout, Request};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { frame_bytes_max: 1 << 20, array_count_max: 1000 };
    let mut buf = BytesMut::from(data);
    // Frames back to back, as a connection reads them.
    while let Ok(Some((header, payload))) = split_frame_mut(&mut buf, &limits) {
        if header.api_key.get() == ApiKey::Produce as u16 {
            let _ = ProduceLayout::decode(&payload, &limits);
        }
        let _ = Request::decode(&header, &payload.freeze(), &limits);
    }
});
