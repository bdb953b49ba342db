//! Typed async client for the Broadcastify Calls website endpoints: login and session, live
//! calls, archived 30-minute blocks, and call audio on the CDN. It needs no NATS and is the
//! embeddable API of the project; the services build on it.
//!
//! Where the specification (`docs/spec.md` §3) and the real site (`docs/protocol.md`) differ,
//! this crate follows the site and says so at the spot.
//!
//! # Layout
//!
//! - [`config`]: the client settings, [`ClientConfig`];
//! - [`client`]: the shared HTTP client (pool, browser headers, concurrency limit, session);
//! - [`auth`]: login, logout, [`SessionToken`]; [`session`]: where sessions come from;
//! - [`live`]: live-call selectors, polls, the cursor rule;
//! - [`archive`]: 30-minute archive blocks;
//! - [`audio`]: CDN URLs and resumable downloads;
//! - [`calls`]: the calls arrays into `bcfy_proto::Call`;
//! - [`error`]: the error taxonomy with retry hints; [`retry_after`]: `Retry-After`.

pub mod archive;
pub mod audio;
pub mod auth;
pub mod calls;
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod live;
pub mod retry_after;
pub mod session;
mod split;

pub use archive::{ArchiveBlock, ArchiveFetch, Validators};
pub use audio::{AudioDownload, AudioEnd, AudioFile, AudioPiece};
pub use auth::SessionToken;
pub use calls::{ParsedCalls, UpstreamCall};
pub use client::Client;
pub use config::ClientConfig;
pub use error::{AudioDownloadError, AuthenticationError, Endpoint, Error, ParseError, RetryHint};
pub use live::{CallIdentity, GroupKey, LiveAnswer, LiveCalls, LiveQuery, Selector};
pub use session::{LocalSession, SessionSource};
