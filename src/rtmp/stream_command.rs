//! What a client's command asks of the server, for an edge that authorizes
//! streams: `connect` (app, tcUrl, flashVer), a publish (`releaseStream`,
//! `FCPublish`, `publish`) or a play (`play`, `play2`, `FCSubscribe`) and
//! the stream name it names.
//!
//! Reads only the leading arguments a server reads (the command name, the
//! transaction id, the command object and the stream name) and ignores
//! what follows, so that trailing bytes a server skips cannot hide a
//! `publish` from the edge.

use super::amf0::{self, Amf0Error, Value};
use super::chunk::{Message, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};
use super::connect::ConnectInfo;

/// A command's meaning for stream authorization.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamCommand {
    /// `connect`.
    Connect {
        /// The application.
        app: String,
        /// The `tcUrl`, if sent.
        tc_url: Option<String>,
        /// The `flashVer`, if sent.
        flash_ver: Option<String>,
    },
    /// A command that names a stream to publish.
    Publish {
        /// The command's name (`publish`, `releaseStream`, `FCPublish`).
        command: &'static str,
        /// The stream name as sent, `?query` included.
        name: String,
    },
    /// A command that names a stream to play.
    Play {
        /// The command's name (`play`, `play2`, `FCSubscribe`).
        command: &'static str,
        /// The stream name as sent, `?query` included.
        name: String,
    },
    /// Any other command (`createStream`, `deleteStream`, `_checkbw`, …).
    Other,
}

/// Why a command could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamCommandError {
    /// The payload is not valid AMF.
    #[error("unreadable RTMP command: {0}")]
    Amf(#[from] Amf0Error),
    /// An AMF3 command without its leading 0x00 format byte.
    #[error("RTMP AMF3 command without its 0x00 format byte")]
    Amf3Format,
    /// No command name string first.
    #[error("RTMP command without a name")]
    NoName,
    /// A publish or play without a stream name string.
    #[error("RTMP {0} without a stream name")]
    NoStreamName(&'static str),
    /// A `connect` the connect parser refused.
    #[error("{0}")]
    Connect(String),
}

const PUBLISH: [&str; 3] = ["publish", "releaseStream", "FCPublish"];
const PLAY: [&str; 3] = ["play", "play2", "FCSubscribe"];

/// Reads a command message (type 20, or 17 with its format byte).
pub fn classify(msg: &Message) -> Result<StreamCommand, StreamCommandError> {
    let amf = match msg.type_id {
        TYPE_COMMAND_AMF0 => &msg.payload[..],
        TYPE_COMMAND_AMF3 => match msg.payload.split_first() {
            Some((0, rest)) => rest,
            _ => return Err(StreamCommandError::Amf3Format),
        },
        _ => return Ok(StreamCommand::Other),
    };
    let Some(Value::String(name)) = amf0::decode_leading(amf, 1)?.into_iter().next() else {
        return Err(StreamCommandError::NoName);
    };
    if name == "connect" {
        let info =
            ConnectInfo::parse(msg).map_err(|e| StreamCommandError::Connect(e.to_string()))?;
        let flash_ver = amf0::property(&info.command_object, "flashVer")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(StreamCommand::Connect {
            app: info.app,
            tc_url: info.tc_url,
            flash_ver,
        });
    }
    let publish = PUBLISH.iter().find(|c| **c == name);
    let play = PLAY.iter().find(|c| **c == name);
    let Some(&command) = publish.or(play) else {
        return Ok(StreamCommand::Other);
    };
    // name, transaction id, command object (null), stream name.
    let values = amf0::decode_leading(amf, 4)?;
    let stream = match values.get(3) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(props)) if command == "play2" => amf0::property(props, "streamName")
            .and_then(Value::as_str)
            .ok_or(StreamCommandError::NoStreamName(command))?
            .to_owned(),
        _ => return Err(StreamCommandError::NoStreamName(command)),
    };
    Ok(if publish.is_some() {
        StreamCommand::Publish {
            command,
            name: stream,
        }
    } else {
        StreamCommand::Play {
            command,
            name: stream,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::amf0::encode_all;

    fn msg(values: &[Value], trailing: &[u8]) -> Message {
        let mut payload = Vec::new();
        encode_all(values, &mut payload);
        payload.extend_from_slice(trailing);
        Message {
            csid: 8,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF0,
            stream_id: 1,
            payload: payload.into(),
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn reads_publish_play_and_connect() {
        let publish = msg(
            &[
                s("publish"),
                Value::Number(5.0),
                Value::Null,
                s("key?a=1"),
                s("live"),
            ],
            b"",
        );
        assert_eq!(
            classify(&publish),
            Ok(StreamCommand::Publish {
                command: "publish",
                name: "key?a=1".into()
            })
        );
        let fc = msg(
            &[s("FCPublish"), Value::Number(3.0), Value::Null, s("k")],
            b"",
        );
        assert!(matches!(
            classify(&fc),
            Ok(StreamCommand::Publish {
                command: "FCPublish",
                ..
            })
        ));
        let play2 = msg(
            &[
                s("play2"),
                Value::Number(0.0),
                Value::Null,
                Value::Object(vec![("streamName".into(), s("x"))]),
            ],
            b"",
        );
        assert_eq!(
            classify(&play2),
            Ok(StreamCommand::Play {
                command: "play2",
                name: "x".into()
            })
        );
        let connect = msg(
            &[
                s("connect"),
                Value::Number(1.0),
                Value::Object(vec![
                    ("app".into(), s("live")),
                    ("flashVer".into(), s("FMLE/3.0")),
                    ("tcUrl".into(), s("rtmp://h/live")),
                ]),
            ],
            b"",
        );
        assert_eq!(
            classify(&connect),
            Ok(StreamCommand::Connect {
                app: "live".into(),
                tc_url: Some("rtmp://h/live".into()),
                flash_ver: Some("FMLE/3.0".into()),
            })
        );
        assert_eq!(
            classify(&msg(&[s("createStream"), Value::Number(4.0)], b"")),
            Ok(StreamCommand::Other)
        );
    }

    /// Bytes after the arguments a server reads do not hide a publish.
    #[test]
    fn trailing_garbage_does_not_hide_a_publish() {
        let publish = msg(
            &[s("publish"), Value::Number(5.0), Value::Null, s("key")],
            &[0xff, 0x13],
        );
        assert!(matches!(
            classify(&publish),
            Ok(StreamCommand::Publish { .. })
        ));
    }

    #[test]
    fn a_publish_without_a_name_is_an_error() {
        let publish = msg(
            &[
                s("publish"),
                Value::Number(5.0),
                Value::Null,
                Value::Number(1.0),
            ],
            b"",
        );
        assert_eq!(
            classify(&publish),
            Err(StreamCommandError::NoStreamName("publish"))
        );
        let nameless = msg(&[Value::Number(1.0)], b"");
        assert_eq!(classify(&nameless), Err(StreamCommandError::NoName));
    }
}
