use super::*;
use crate::rtmp::chunk::{ChunkReader, encode_message};

const TC_URL: &str = "rtmp://example.com:1935/live";

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn n(v: f64) -> Value {
    Value::Number(v)
}

fn prop(key: &str, value: Value) -> (String, Value) {
    (key.to_owned(), value)
}

/// The command object ffmpeg sends (Enhanced RTMP build).
fn ffmpeg_command_object() -> Vec<(String, Value)> {
    vec![
        prop("app", s("live")),
        prop("type", s("nonprivate")),
        prop("flashVer", s("FMLE/3.0 (compatible; Lavf61.7.100)")),
        prop("tcUrl", s(TC_URL)),
        prop("fpad", Value::Boolean(false)),
        prop("capabilities", n(15.0)),
        prop("audioCodecs", n(4071.0)),
        prop("videoCodecs", n(252.0)),
        prop("videoFunction", n(1.0)),
        prop(
            "fourCcList",
            Value::StrictArray(vec![s("av01"), s("vp09"), s("hvc1")]),
        ),
    ]
}

fn command(type_id: u8, values: &[Value]) -> Message {
    let mut payload = Vec::new();
    if type_id == TYPE_COMMAND_AMF3 {
        payload.push(0);
    }
    amf0::encode_all(values, &mut payload);
    Message {
        csid: 3,
        timestamp: 0,
        type_id,
        stream_id: 0,
        payload: Bytes::from(payload),
    }
}

fn connect_with(props: Vec<(String, Value)>) -> Message {
    command(
        TYPE_COMMAND_AMF0,
        &[s("connect"), n(1.0), Value::Object(props)],
    )
}

fn ffmpeg_connect() -> Message {
    connect_with(ffmpeg_command_object())
}

/// `haystack` with the first `from` replaced by `to`.
fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

fn short_string(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    amf0::encode(&s(text), &mut out);
    out
}

#[test]
fn parses_ffmpeg_connect() {
    let info = ConnectInfo::parse(&ffmpeg_connect()).unwrap();
    assert_eq!(info.transaction_id, 1.0);
    assert_eq!(info.app, "live");
    assert_eq!(info.tc_url.as_deref(), Some(TC_URL));
    assert_eq!(info.host.as_deref(), Some("example.com"));
    assert_eq!(info.command_object, ffmpeg_command_object());
    assert!(info.rest.is_empty());
}

#[test]
fn parses_connect_read_from_chunks() {
    let msg = ffmpeg_connect();
    let bytes = encode_message(&msg, 128).unwrap();
    assert!(bytes.len() > 2 * 128, "spans several chunks");
    let mut reader = ChunkReader::new(64 * 1024);
    reader.push(&bytes);
    let received = reader.next_message().unwrap().unwrap();
    assert_eq!(received.end, bytes.len() as u64);
    assert_eq!(ConnectInfo::parse(&received.message).unwrap().app, "live");
}

#[test]
fn rewrite_changes_only_tc_url() {
    let msg = Message {
        timestamp: 77,
        ..ffmpeg_connect()
    };
    let new_url = "rtmp://upstream.internal:19350/live";
    let rewritten = rewrite_tc_url(&msg, new_url).unwrap();
    let expected = replace_bytes(&msg.payload, &short_string(TC_URL), &short_string(new_url));
    assert_eq!(rewritten.payload, expected);
    assert_eq!(
        (
            rewritten.csid,
            rewritten.timestamp,
            rewritten.type_id,
            rewritten.stream_id
        ),
        (3, 77, TYPE_COMMAND_AMF0, 0)
    );
    let info = ConnectInfo::parse(&rewritten).unwrap();
    assert_eq!(info.tc_url.as_deref(), Some(new_url));
    assert_eq!(info.host.as_deref(), Some("upstream.internal"));
    let mut props = ffmpeg_command_object();
    props[3].1 = s(new_url);
    assert_eq!(info.command_object, props);
}

#[test]
fn rewrite_keeps_unknown_values_and_arguments() {
    let mut props = ffmpeg_command_object();
    props.push(prop("objectEncoding", n(0.0)));
    props.push(prop(
        "custom",
        Value::EcmaArray {
            count: 7,
            props: vec![prop("k", Value::Date(1.0, 0))],
        },
    ));
    let msg = command(
        TYPE_COMMAND_AMF0,
        &[
            s("connect"),
            n(1.0),
            Value::Object(props),
            s("user-arg"),
            Value::Null,
        ],
    );
    let rewritten = rewrite_tc_url(&msg, "rtmp://b/live").unwrap();
    let expected = replace_bytes(
        &msg.payload,
        &short_string(TC_URL),
        &short_string("rtmp://b/live"),
    );
    assert_eq!(rewritten.payload, expected);
    assert_eq!(
        ConnectInfo::parse(&rewritten).unwrap().rest,
        [s("user-arg"), Value::Null]
    );
}

#[test]
fn rewrite_appends_missing_tc_url() {
    let msg = connect_with(vec![prop("app", s("live"))]);
    let rewritten = rewrite_tc_url(&msg, "rtmp://h/live").unwrap();
    let info = ConnectInfo::parse(&rewritten).unwrap();
    assert_eq!(
        info.command_object,
        [prop("app", s("live")), prop("tcUrl", s("rtmp://h/live"))]
    );
}

#[test]
fn amf3_command_variant() {
    let values = [s("connect"), n(1.0), Value::Object(ffmpeg_command_object())];
    let msg = command(TYPE_COMMAND_AMF3, &values);
    assert_eq!(msg.payload[0], 0);
    let info = ConnectInfo::parse(&msg).unwrap();
    assert_eq!(
        (info.app.as_str(), info.host.as_deref()),
        ("live", Some("example.com"))
    );
    let rewritten = rewrite_tc_url(&msg, "rtmp://x/live").unwrap();
    assert_eq!(rewritten.type_id, TYPE_COMMAND_AMF3);
    assert_eq!(
        rewritten.payload,
        replace_bytes(
            &msg.payload,
            &short_string(TC_URL),
            &short_string("rtmp://x/live")
        )
    );
    let mut no_prefix = msg.clone();
    no_prefix.payload = msg.payload.slice(1..);
    assert_eq!(
        ConnectInfo::parse(&no_prefix),
        Err(ConnectError::Amf3Format)
    );
    no_prefix.payload = Bytes::new();
    assert_eq!(
        ConnectInfo::parse(&no_prefix),
        Err(ConnectError::Amf3Format)
    );
}

#[test]
fn refuses_what_is_not_a_usable_connect() {
    let obj = || Value::Object(vec![prop("app", s("live"))]);
    let cases: Vec<(Message, ConnectError)> = vec![
        (
            Message {
                type_id: 8,
                ..ffmpeg_connect()
            },
            ConnectError::NotCommand(8),
        ),
        (
            command(TYPE_COMMAND_AMF0, &[s("play"), n(1.0), obj()]),
            ConnectError::NotConnect("play".into()),
        ),
        (
            command(TYPE_COMMAND_AMF0, &[s("Connect"), n(1.0), obj()]),
            ConnectError::NotConnect("Connect".into()),
        ),
        (
            command(TYPE_COMMAND_AMF0, &[n(1.0)]),
            ConnectError::NotConnect(String::new()),
        ),
        (
            command(TYPE_COMMAND_AMF0, &[]),
            ConnectError::NotConnect(String::new()),
        ),
        (
            command(TYPE_COMMAND_AMF0, &[s("connect"), Value::Null, obj()]),
            ConnectError::MissingTransactionId,
        ),
        (
            command(TYPE_COMMAND_AMF0, &[s("connect"), n(1.0), Value::Null]),
            ConnectError::MissingCommandObject,
        ),
        (
            command(TYPE_COMMAND_AMF0, &[s("connect"), n(1.0)]),
            ConnectError::MissingCommandObject,
        ),
        (
            connect_with(vec![prop("tcUrl", s(TC_URL))]),
            ConnectError::MissingApp,
        ),
        (
            connect_with(vec![prop("app", n(1.0))]),
            ConnectError::NotAString("app"),
        ),
        (
            connect_with(vec![prop("app", s("a")), prop("tcUrl", Value::Null)]),
            ConnectError::NotAString("tcUrl"),
        ),
        (
            connect_with(vec![prop("app", s("a")), prop("app", s("b"))]),
            ConnectError::DuplicateProperty("app"),
        ),
        (
            connect_with(vec![
                prop("app", s("a")),
                prop("tcUrl", s("rtmp://a/a")),
                prop("tcUrl", s("rtmp://b/a")),
            ]),
            ConnectError::DuplicateProperty("tcUrl"),
        ),
    ];
    for (msg, err) in cases {
        assert_eq!(ConnectInfo::parse(&msg), Err(err.clone()));
        assert_eq!(rewrite_tc_url(&msg, "rtmp://x/y"), Err(err));
    }
    let mut bad_amf = ffmpeg_connect();
    bad_amf.payload = Bytes::from_static(&[2, 0, 7, b'c']);
    assert!(matches!(
        ConnectInfo::parse(&bad_amf),
        Err(ConnectError::Amf0(Amf0Error::Truncated(_)))
    ));
    let long_name = "x".repeat(1000);
    let msg = command(TYPE_COMMAND_AMF0, &[s(&long_name)]);
    let Err(ConnectError::NotConnect(quoted)) = ConnectInfo::parse(&msg) else {
        panic!("expected NotConnect");
    };
    assert_eq!(quoted.len(), QUOTED_NAME_MAX);
}

#[test]
fn host_from_tc_url() {
    let cases = [
        ("rtmp://Example.COM:1935/live", Some("example.com")),
        ("rtmps://host/app/inst", Some("host")),
        ("rtmp://host", Some("host")),
        ("rtmp://host:/app", Some("host")),
        ("rtmp://host?x=1", Some("host")),
        ("rtmp://user:pw@h.example:1935/app", Some("h.example")),
        ("rtmp://[::1]:1935/live", Some("::1")),
        ("rtmp://[2001:DB8::1]/live", Some("2001:db8::1")),
        ("rtmp://10.0.0.1:1935/live", Some("10.0.0.1")),
        ("rtmp://:1935/live", None),
        ("rtmp:///live", None),
        ("rtmp://host:abc/live", None),
        ("rtmp://host:1:2/live", None),
        ("rtmp://ho st/live", None),
        ("rtmp://evil.com\\@good.com/", Some("good.com")),
        ("rtmp://[::1/live", None),
        ("rtmp://[::1]x/live", None),
        ("example.com/live", None),
        ("", None),
    ];
    for (url, host) in cases {
        assert_eq!(url_host(url).as_deref(), host, "{url}");
    }
}

#[test]
fn error_reply_layout() {
    let reply = error_reply(1.0, "no route for app \"x\"");
    assert_eq!(
        (reply.csid, reply.timestamp, reply.type_id, reply.stream_id),
        (3, 0, TYPE_COMMAND_AMF0, 0)
    );
    let values = amf0::decode_all(&reply.payload).unwrap();
    assert_eq!(
        values,
        [
            s("_error"),
            n(1.0),
            Value::Null,
            Value::Object(vec![
                prop("level", s("error")),
                prop("code", s("NetConnection.Connect.Rejected")),
                prop("description", s("no route for app \"x\"")),
            ]),
        ]
    );
    // It chunks and reads back like any message.
    let mut reader = ChunkReader::new(1024);
    reader.push(&encode_message(&reply, 128).unwrap());
    assert_eq!(reader.next_message().unwrap().unwrap().message, reply);
}
