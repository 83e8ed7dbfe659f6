//! rtmpgate: terminates RTMPS, RTMPT and RTMPTS and relays plain RTMP to any
//! RTMP server.
//!
//! Data flows one way through the modules, and so do the imports (see
//! `ARCHITECTURE.md` at the repository root; `tests/architecture.rs` fails
//! on any import cycle):
//! start-up ([`server`]) → accept ([`listener`]) → dispatch ([`connection`]:
//! PROXY header, TLS ([`tls`]), first bytes ([`sniff`])) → byte relay
//! ([`relay`]), routed relay ([`routed`]) or HTTP tunnel session
//! ([`rtmpt`]) → upstream socket ([`upstream`]).
//!
//! | module | owns |
//! |---|---|
//! | [`server`] | building the shared state, binding, running, draining |
//! | [`listener`] | the accept loops: connection cap, backoff, overload pause |
//! | [`connection`] | one connection: handshakes, sniffing, dispatch, close log line |
//! | [`auth`] | authorizing publish/play: keys file, signed URLs, nginx-rtmp-style webhook, allow cache (not wired into the relay paths yet) |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`context`] | what every connection shares ([`context::ServeContext`]) |
//! | [`outcome`] | how a connection ended: close reasons, byte counts |
//! | [`cli`] | flags and environment variables (clap) |
//! | [`config`] | merging flags, env, file and defaults into a validated [`config::Config`]; every room's settings types |
//! | [`endpoint`] | listener and upstream URLs |
//! | [`io`] | shared plumbing of the stream wrappers |
//! | [`limits`] | what one client is (IPv4 address, IPv6 /64) and the per-client connection cap |
//! | [`sniff`] | protocol detection from first bytes; replaying them |
//! | [`tls`] | rustls server config, PEM loading, self-signed fallback, reload |
//! | [`relay`] | bidirectional copy, half-close, idle timeout, byte counts |
//! | [`buffers`] | pooled 64 KiB I/O buffers, held only while bytes are in flight; TLS read-ahead |
//! | [`routes`] | routing rules by `app` and `tcUrl` host |
//! | [`routed`] | a routed connection: handshakes, reading up to `connect` |
//! | [`rtmp`] | RTMP handshake, chunk stream and AMF0 pieces used for routing |
//! | [`rtmpt`] | the HTTP tunnel: sessions, ordering, long-poll |
//! | [`upstream`] | connecting to the RTMP server |
//! | [`net`] | socket options |
//! | [`overload`] | process-wide high-water mark on buffered bytes and connections; shedding new work |
//! | [`proxy_protocol`] | PROXY v1/v2 headers to the upstream and from load balancers |
//! | [`metrics`] | Prometheus counters and gauges, with their labels |

#![forbid(unsafe_code)]

pub mod admin;
pub mod app_metrics;
pub mod auth;
pub mod buffers;
pub mod cli;
pub mod config;
pub mod connection;
pub mod context;
pub mod endpoint;
pub mod gate;
pub mod io;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod outcome;
pub mod overload;
pub mod proxy_protocol;
pub mod relay;
pub mod routed;
pub mod routes;
pub mod rtmp;
pub mod rtmpt;
pub mod server;
pub mod sniff;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::{Gateway, StartError};
