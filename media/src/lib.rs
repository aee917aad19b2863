//! `shieldcall-media`: what the Shieldcall server does with media, which it
//! receives only in a standard call and only after each person agreed (the
//! "media leg"; never in an end-to-end encrypted call): recordings, voicemail
//! and the sound for live captions.
//!
//! # Layout
//! - [`webm`]: a WebM writer for a recording: Opus and VP8 frames copied as
//!   they arrived, no re-encoding.
//! - [`leg`]: one person's media leg, a receive-only WebRTC peer (str0m,
//!   sans-IO) that feeds a recorder, a transcriber, or both.
//! - [`sender`]: a browser's side of a leg, for tests and benchmarks.
//! - [`recorder`]: one person's recording: when the file starts, where each
//!   frame goes in time.
//! - [`transcriber`]: one person's sound for live captions, as 16 kHz PCM.
//!
//! Pure Rust with no I/O of its own beyond the writer it is given; never
//! panics on what a peer sent.

pub mod leg;
pub mod recorder;
pub mod sender;
pub mod transcriber;
pub mod webm;
