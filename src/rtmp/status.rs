//! The `onStatus` error reply sent to a client whose stream was denied.
//!
//! Owns encoding only (AMF0 body, chunked with `encode_message`); it does not
//! decide anything or write to a socket.
//!
//! What clients do with it: ffmpeg (`libavformat/rtmpproto.c`,
//! `handle_invoke_status`) reads the `level` and `description` properties of
//! the object after the null; with `level` = `"error"` it logs
//! `Server error: <description>` and fails the publish/play, so the client
//! stops instead of waiting.

use bytes::Bytes;

use super::amf0::{self, Value};
use super::chunk::{ChunkError, Message, TYPE_COMMAND_AMF0, encode_message};

/// Chunk stream id used for the reply (the one commonly used for
/// NetStream commands).
pub const STATUS_CSID: u32 = 5;

/// Status code for a denied `publish`.
pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
/// Status code for a denied `play`.
pub const PLAY_FAILED: &str = "NetStream.Play.Failed";

/// Encodes `onStatus(0, null, {level: "error", code, description})` on
/// message stream `stream_id`, chunked with `chunk_size` (the chunk size the
/// server→client direction currently uses).
pub fn error_status(
    stream_id: u32,
    code: &str,
    description: &str,
    chunk_size: u32,
) -> Result<Vec<u8>, ChunkError> {
    let values = [
        Value::String("onStatus".into()),
        Value::Number(0.0),
        Value::Null,
        Value::Object(vec![
            ("level".into(), Value::String("error".into())),
            ("code".into(), Value::String(code.into())),
            ("description".into(), Value::String(description.into())),
        ]),
    ];
    let mut payload = Vec::new();
    amf0::encode_all(&values, &mut payload);
    let msg = Message {
        csid: STATUS_CSID,
        timestamp: 0,
        type_id: TYPE_COMMAND_AMF0,
        stream_id,
        payload: Bytes::from(payload),
    };
    encode_message(&msg, chunk_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{ChunkLimits, ChunkReader};

    #[test]
    fn decodes_back_with_reader() {
        let bytes = error_status(1, PUBLISH_BAD_NAME, "denied", 16).unwrap();
        let scs = Message {
            csid: 2,
            timestamp: 0,
            type_id: crate::rtmp::chunk::TYPE_SET_CHUNK_SIZE,
            stream_id: 0,
            payload: Bytes::from_static(&[0, 0, 0, 16]),
        };
        let mut r = ChunkReader::with_limits(ChunkLimits::new(64 * 1024));
        r.push(&encode_message(&scs, 128).unwrap());
        r.push(&bytes);
        let first = r.next_message().unwrap().unwrap().message;
        assert_eq!(first.type_id, crate::rtmp::chunk::TYPE_SET_CHUNK_SIZE);
        assert!(bytes.len() > 16 + 12, "reply spans several chunks");
        let got = r.next_message().unwrap().unwrap().message;
        assert_eq!(got.stream_id, 1);
        assert_eq!(got.type_id, TYPE_COMMAND_AMF0);
        let v = amf0::decode_all(&got.payload).unwrap();
        assert_eq!(v[0], Value::String("onStatus".into()));
        assert_eq!(v[1], Value::Number(0.0));
        assert_eq!(v[2], Value::Null);
        let Value::Object(props) = &v[3] else {
            panic!("no object")
        };
        assert_eq!(
            amf0::property(props, "level"),
            Some(&Value::String("error".into()))
        );
        assert_eq!(
            amf0::property(props, "code"),
            Some(&Value::String(PUBLISH_BAD_NAME.into()))
        );
    }

    #[test]
    fn bad_chunk_size_is_an_error() {
        assert!(error_status(1, PLAY_FAILED, "x", 0).is_err());
    }
}
