//! Arbitrary bytes into the WebSocket layer: the upgrade request parser (with the passkey
//! of its path) and the frame readers of both sides. Nothing may panic, a passkey found
//! is in the input, a whole frame lies within the input, and a frame written back from
//! what was read reads the same again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_types::PasskeyParam;
use tracker_ws_protocol::websocket::{
    Frame, Upgrade, parse_upgrade, read_frame, read_server_frame, write_client_frame,
    write_frame,
};

fuzz_target!(|data: &[u8]| {
    if let Upgrade::WebSocket {
        passkey: Some(PasskeyParam::Key(key)),
        ..
    } = parse_upgrade(data, 1024)
    {
        // A passkey is read from the path, as sent.
        assert!(
            data.windows(32).any(|w| w == key.as_str().as_bytes()),
            "passkey from the input"
        );
    }
    for client in [true, false] {
        let mut buf = data.to_vec();
        let frame = if client {
            read_frame(&mut buf, 4096)
        } else {
            read_server_frame(&mut buf, 4096)
        };
        if let Frame::Whole {
            kind,
            payload,
            len,
            ..
        } = frame
        {
            assert!(payload.end <= len && len <= data.len(), "frame within the input");
            let Some(payload) = buf.get(payload) else {
                panic!("payload range outside the buffer");
            };
            let mut again = Vec::new();
            if client {
                write_client_frame(&mut again, kind, payload, [1, 2, 3, 4]);
                let read = read_frame(&mut again, 4096);
                assert!(matches!(read, Frame::Whole { kind: k, .. } if k == kind));
            } else {
                write_frame(&mut again, kind, payload);
                let read = read_server_frame(&mut again, 4096);
                assert!(matches!(read, Frame::Whole { kind: k, .. } if k == kind));
            }
        }
    }
});
