//! RTMP protocol pieces for routing a connection by its `connect` command.
//!
//! Owns pure protocol code only: byte slices in, values out, no sockets and
//! no async, so that all of it is unit-tested and fuzzed (`fuzz/`). The
//! connection code drives it: plain handshake with the client, chunked
//! messages up to `connect`, routing on `app` and the `tcUrl` host, its own
//! handshake with the chosen upstream, then the client's bytes after C2
//! forwarded unchanged (or with `connect` re-encoded).
//!
//! | file | owns |
//! |---|---|
//! | [`handshake`] | C0/C1/C2 and S0/S1/S2 of the plain handshake, both roles |
//! | [`chunk`] | reassembling messages from chunks (with input offsets); chunking one |
//! | [`amf0`] | AMF0 values: bounded decoding, byte-exact re-encoding |
//! | [`connect`] | reading `connect`, rewriting its `tcUrl`, the `_error` reply |
//! | [`follow`] | following a live chunk stream for its commands, without buffering it |
//! | [`query`] | splitting `name?k=v` into name and decoded arguments |
//! | [`status`] | the `onStatus` error reply to a denied publish/play |
//! | [`stream_command`] | what a command asks for: connect, a publish or a play, and its stream name |

pub mod amf0;
pub mod chunk;
pub mod connect;
pub mod follow;
pub mod handshake;
pub mod query;
pub mod status;
pub mod stream_command;

pub use amf0::{Amf0Error, Value};
pub use chunk::{ChunkError, ChunkLimits, ChunkReader, Message, Received, encode_message};
pub use connect::{ConnectError, ConnectInfo, error_reply, rewrite_tc_url};
pub use handshake::{HandshakeError, client_c0c1, client_c2, server_response};
pub use status::error_status;
