//! The NetConnection `connect` command: what routing needs from it, and the
//! two messages a router writes about it.
//!
//! Owns reading `connect` (AMF0 command, type 20, or AMF3 command, type 17,
//! whose payload is a 0x00 format byte and then AMF0), re-encoding it with a
//! different `tcUrl` and everything else byte for byte as it was (Enhanced
//! RTMP's `fourCcList` and any property we do not know included), and the
//! `_error` reply that rejects a connection.
//!
//! The properties routed on, `app` and `tcUrl`, are refused when they occur
//! twice: servers differ on which one wins, and a router must not pick an
//! upstream by one while the upstream obeys the other.

use bytes::Bytes;

use super::amf0::{self, Amf0Error, Value};
use super::chunk::{Message, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};

/// Chunk stream that NetConnection commands use by convention.
pub const COMMAND_CSID: u32 = 3;

/// The status code of a refused `connect`.
pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";

/// Longest command name quoted back in [`ConnectError::NotConnect`].
const QUOTED_NAME_MAX: usize = 64;

/// What the router needs from a client's `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    /// Transaction id, echoed in the reply (clients send 1).
    pub transaction_id: f64,
    /// The `app` property.
    pub app: String,
    /// The `tcUrl` property, when present.
    pub tc_url: Option<String>,
    /// Host part of `tcUrl`: lower-cased, without user info, port or IPv6
    /// brackets; `None` without a `tcUrl` or when its host is malformed.
    pub host: Option<String>,
    /// The whole command object, in wire order.
    pub command_object: Vec<(String, Value)>,
    /// Values after the command object (optional user arguments).
    pub rest: Vec<Value>,
}

/// Why a message is not a usable `connect`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// The message is not an AMF0 or AMF3 command.
    #[error("expected a connect command, got RTMP message type {0}")]
    NotCommand(u8),
    /// An AMF3 command whose first byte is not 0x00.
    #[error("AMF3 command does not start with the 0x00 format byte")]
    Amf3Format,
    /// The payload is not valid AMF0.
    #[error("connect command is not valid AMF0: {0}")]
    Amf0(#[from] Amf0Error),
    /// The command is not `connect` (its name, shortened; empty when the
    /// first value is not a string).
    #[error("expected the connect command first, got {0:?}")]
    NotConnect(String),
    /// No numeric transaction id after the command name.
    #[error("connect command has no numeric transaction id")]
    MissingTransactionId,
    /// No command object (an AMF0 object) after the transaction id.
    #[error("connect command has no command object")]
    MissingCommandObject,
    /// The command object has no `app` property.
    #[error("connect command has no app property")]
    MissingApp,
    /// A property routed on is not a string.
    #[error("connect property {0} is not a string")]
    NotAString(&'static str),
    /// A property routed on occurs more than once.
    #[error("connect property {0} occurs more than once")]
    DuplicateProperty(&'static str),
}

impl ConnectInfo {
    /// Reads a `connect` command message.
    pub fn parse(msg: &Message) -> Result<Self, ConnectError> {
        let mut values = command_values(msg)?.into_iter();
        match values.next() {
            Some(Value::String(name)) if name == "connect" => {}
            Some(Value::String(name)) => {
                let quoted = name.chars().take(QUOTED_NAME_MAX).collect();
                return Err(ConnectError::NotConnect(quoted));
            }
            _ => return Err(ConnectError::NotConnect(String::new())),
        }
        let Some(Value::Number(transaction_id)) = values.next() else {
            return Err(ConnectError::MissingTransactionId);
        };
        let Some(Value::Object(command_object)) = values.next() else {
            return Err(ConnectError::MissingCommandObject);
        };
        let app = single_string(&command_object, "app")?.ok_or(ConnectError::MissingApp)?;
        let tc_url = single_string(&command_object, "tcUrl")?;
        let host = tc_url.as_deref().and_then(url_host);
        Ok(Self {
            transaction_id,
            app,
            tc_url,
            host,
            command_object,
            rest: values.collect(),
        })
    }

    /// The command's AMF0 values, ready to encode.
    fn to_values(&self) -> Vec<Value> {
        let mut values = Vec::with_capacity(3 + self.rest.len());
        values.push(Value::String("connect".to_owned()));
        values.push(Value::Number(self.transaction_id));
        values.push(Value::Object(self.command_object.clone()));
        values.extend(self.rest.iter().cloned());
        values
    }
}

/// `msg` with its `tcUrl` replaced by `new_tc_url` (appended last when it
/// had none), every other byte of the payload as it was, and the same
/// message header fields.
pub fn rewrite_tc_url(msg: &Message, new_tc_url: &str) -> Result<Message, ConnectError> {
    let mut info = ConnectInfo::parse(msg)?;
    let new = Value::String(new_tc_url.to_owned());
    match info.command_object.iter_mut().find(|(k, _)| k == "tcUrl") {
        Some((_, value)) => *value = new,
        None => info.command_object.push(("tcUrl".to_owned(), new)),
    }
    let mut payload = Vec::with_capacity(msg.payload.len() + new_tc_url.len());
    if msg.type_id == TYPE_COMMAND_AMF3 {
        payload.push(0);
    }
    amf0::encode_all(&info.to_values(), &mut payload);
    Ok(Message {
        payload: Bytes::from(payload),
        ..msg.clone()
    })
}

/// The `_error` reply refusing a `connect` with this transaction id: an AMF0
/// command on chunk stream 3, message stream 0, with the info object
/// `{level: "error", code: "NetConnection.Connect.Rejected", description}`.
pub fn error_reply(transaction_id: f64, description: &str) -> Message {
    let info = vec![
        ("level".to_owned(), Value::String("error".to_owned())),
        (
            "code".to_owned(),
            Value::String(CONNECT_REJECTED.to_owned()),
        ),
        (
            "description".to_owned(),
            Value::String(description.to_owned()),
        ),
    ];
    let values = [
        Value::String("_error".to_owned()),
        Value::Number(transaction_id),
        Value::Null,
        Value::Object(info),
    ];
    let mut payload = Vec::new();
    amf0::encode_all(&values, &mut payload);
    Message {
        csid: COMMAND_CSID,
        timestamp: 0,
        type_id: TYPE_COMMAND_AMF0,
        stream_id: 0,
        payload: Bytes::from(payload),
    }
}

/// A command message's AMF0 values.
fn command_values(msg: &Message) -> Result<Vec<Value>, ConnectError> {
    let amf0 = match msg.type_id {
        TYPE_COMMAND_AMF0 => &msg.payload[..],
        TYPE_COMMAND_AMF3 => match msg.payload.split_first() {
            Some((0, rest)) => rest,
            _ => return Err(ConnectError::Amf3Format),
        },
        other => return Err(ConnectError::NotCommand(other)),
    };
    Ok(amf0::decode_all(amf0)?)
}

/// The string value of `key`, refusing duplicates and other types.
fn single_string(
    props: &[(String, Value)],
    key: &'static str,
) -> Result<Option<String>, ConnectError> {
    let mut matches = props.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    let Some(value) = matches.next() else {
        return Ok(None);
    };
    if matches.next().is_some() {
        return Err(ConnectError::DuplicateProperty(key));
    }
    value
        .as_str()
        .map(|s| Some(s.to_owned()))
        .ok_or(ConnectError::NotAString(key))
}

/// The host of `scheme://[userinfo@]host[:port][/path…]`, lower-cased.
///
/// Only characters a DNS name or IP literal can hold are accepted: anything
/// else is a malformed URL whose meaning different parsers disagree on.
fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, after, allowed): (&str, &str, fn(char) -> bool) =
        if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            (host, after, |c| {
                c.is_ascii_hexdigit() || c == ':' || c == '.'
            })
        } else {
            let split = host_port.find(':').unwrap_or(host_port.len());
            let (host, after) = host_port.split_at(split);
            (host, after, |c| {
                c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
            })
        };
    let port_ok = match after.strip_prefix(':') {
        Some(port) => port.bytes().all(|b| b.is_ascii_digit()),
        None => after.is_empty(),
    };
    if host.is_empty() || !port_ok || !host.chars().all(allowed) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
