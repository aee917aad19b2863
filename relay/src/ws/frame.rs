//! RFC 6455 framing for the server side, without I/O.
//!
//! [`parse_header`] reads one frame header from the bytes received so far and
//! checks everything that can be checked before the payload arrives: reserved
//! bits, opcode, masking (a client MUST mask), and the limits on control frames.
//! [`Assembler`] then applies the rules that span frames: fragmentation order,
//! the message size cap (judged from headers, so an oversize message is refused
//! before it is buffered), a cap on fragments per message, UTF-8 of text
//! messages and the close payload. [`encode`] writes the server's unmasked frames.
//!
//! Nothing here panics on what a client sends; every violation is a
//! [`ProtocolError`] that names the close code to answer with.
//!
//! No extensions are negotiated (no `permessage-deflate`), so any reserved bit is
//! an error, and no subprotocol is.

/// The largest control-frame payload (RFC 6455, 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Fragments one message may arrive in. Browsers send a signalling message in one
/// frame; the cap stops a peer from keeping a message open with endless empty
/// fragments.
pub const MAX_FRAGMENTS: usize = 64;

/// Close codes this relay sends (RFC 6455, 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away: the relay shuts down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// Invalid payload data: text that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation: too many messages, or a client that stopped reading.
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
}

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// The next fragment of a message.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// Close.
    Close,
    /// Ping; answered with a pong carrying the same payload.
    Ping,
    /// Pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The client's masking key (always present: unmasked frames are refused).
    pub mask: [u8; 4],
    /// Bytes of the header itself.
    pub header_len: usize,
    /// Bytes of payload that follow the header.
    pub payload_len: u64,
}

impl Header {
    /// Header and payload together, if that fits in memory at all.
    pub fn frame_len(&self) -> Option<usize> {
        usize::try_from(self.payload_len)
            .ok()?
            .checked_add(self.header_len)
    }
}

/// A violation of RFC 6455 or of this relay's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A reserved bit is set, and no extension was negotiated.
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A client frame without a mask.
    #[error("unmasked client frame")]
    Unmasked,
    /// A 64-bit length with its top bit set.
    #[error("invalid frame length")]
    BadLength,
    /// A control frame over 125 bytes or split into fragments.
    #[error("invalid control frame")]
    BadControl,
    /// A continuation frame with no message to continue.
    #[error("continuation without a message")]
    UnexpectedContinuation,
    /// A new text or binary frame while a message is still open.
    #[error("new message inside a fragmented one")]
    ExpectedContinuation,
    /// More fragments than [`MAX_FRAGMENTS`].
    #[error("too many fragments")]
    TooManyFragments,
    /// A message larger than the cap (its length, at least as far as known).
    #[error("message of {0} bytes or more is over the limit")]
    TooLarge(u64),
    /// Text that is not UTF-8.
    #[error("text is not UTF-8")]
    InvalidUtf8,
    /// A close payload of one byte, a reserved code, or a reason that is not UTF-8.
    #[error("invalid close frame")]
    BadClose,
}

impl ProtocolError {
    /// The close code to answer with.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::TooLarge(_) => close_code::TOO_BIG,
            Self::InvalidUtf8 => close_code::INVALID_DATA,
            _ => close_code::PROTOCOL,
        }
    }
}

/// Parses the frame header at the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0F))?;
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::Unmasked);
    }
    let (payload_len, rest, ext) = match b1 & 0x7F {
        126 => {
            let Some((len, rest)) = rest.split_first_chunk::<2>() else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes(*len)), rest, 2)
        }
        127 => {
            let Some((len, rest)) = rest.split_first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*len);
            if len >> 63 != 0 {
                return Err(ProtocolError::BadLength);
            }
            (len, rest, 8)
        }
        n => (u64::from(n), rest, 0),
    };
    if opcode.is_control() && (!fin || payload_len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(ProtocolError::BadControl);
    }
    let Some(mask) = rest.first_chunk::<4>() else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: *mask,
        header_len: 2 + ext + 4,
        payload_len,
    }))
}

/// Unmasks (or masks) `data` in place.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut b = [0; 4];
        b.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(b) ^ word).to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= m;
    }
}

/// One unfragmented, unmasked server frame: header and payload.
pub fn encode(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(10 + len);
    out.push(0x80 | opcode.bits());
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame's payload: the code and a reason (cut to fit 125 bytes).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..end]);
    p
}

/// What a complete frame means to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole text message.
    Text(String),
    /// A whole binary message (not used by the protocol; only its size is kept).
    Binary(usize),
    /// A ping and its payload, to be echoed in a pong.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The peer's close, with its code if it sent one.
    Close(Option<u16>),
}

/// The kind of message being assembled from fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// Puts messages together from frames. Holds no memory between messages.
#[derive(Debug)]
pub struct Assembler {
    /// The largest message accepted, in bytes.
    max: usize,
    /// The open fragmented message, if any.
    open: Option<Kind>,
    /// Its payload so far.
    buf: Vec<u8>,
    /// Its fragments so far.
    fragments: usize,
}

impl Assembler {
    /// An assembler for messages of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: None,
            buf: Vec::new(),
            fragments: 0,
        }
    }

    /// Checks a header against the open message and the limits, before its payload
    /// is read. Changes nothing, so it may be called again for the same header.
    pub fn check(&self, h: &Header) -> Result<(), ProtocolError> {
        let so_far = match (h.opcode, self.open) {
            (op, _) if op.is_control() => return Ok(()),
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(_)) => {
                if self.fragments >= MAX_FRAGMENTS {
                    return Err(ProtocolError::TooManyFragments);
                }
                self.buf.len() as u64
            }
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (_, None) => 0,
        };
        let total = so_far.saturating_add(h.payload_len);
        if total > self.max as u64 {
            return Err(ProtocolError::TooLarge(total));
        }
        Ok(())
    }

    /// Takes one whole frame whose header passed [`Self::check`], with its payload
    /// already unmasked. Returns an event when a message or control frame is complete.
    pub fn push(&mut self, h: &Header, payload: Vec<u8>) -> Result<Option<Event>, ProtocolError> {
        self.check(h)?;
        let kind = match h.opcode {
            OpCode::Ping => return Ok(Some(Event::Ping(payload))),
            OpCode::Pong => return Ok(Some(Event::Pong)),
            OpCode::Close => return parse_close(&payload).map(|c| Some(Event::Close(c))),
            OpCode::Text => Kind::Text,
            OpCode::Binary => Kind::Binary,
            OpCode::Continuation => self.open.unwrap_or(Kind::Binary),
        };
        let whole = if self.open.is_none() && h.fin {
            // The usual case: one frame, no copy.
            payload
        } else {
            if self.buf.is_empty() {
                self.buf = payload;
            } else {
                self.buf.extend_from_slice(&payload);
            }
            self.fragments += 1;
            if !h.fin {
                self.open = Some(kind);
                return Ok(None);
            }
            self.open = None;
            self.fragments = 0;
            std::mem::take(&mut self.buf)
        };
        Ok(Some(match kind {
            Kind::Text => {
                Event::Text(String::from_utf8(whole).map_err(|_| ProtocolError::InvalidUtf8)?)
            }
            Kind::Binary => Event::Binary(whole.len()),
        }))
    }
}

/// Validates a close payload (RFC 6455, 5.5.1 and 7.4).
fn parse_close(payload: &[u8]) -> Result<Option<u16>, ProtocolError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(ProtocolError::BadClose)
        };
    };
    let code = u16::from_be_bytes(*code);
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed || std::str::from_utf8(reason).is_err() {
        return Err(ProtocolError::BadClose);
    }
    Ok(Some(code))
}

/// A client frame as RFC 6455 writes it, for tests: `b0` (FIN, RSV, opcode) as
/// given, the payload masked with `mask`.
#[cfg(test)]
pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    // The server's encoder writes the length the same way; a client adds the mask
    // bit and the key.
    let mut out = encode(OpCode::Binary, payload);
    let header = out.len() - payload.len();
    out[0] = b0;
    out[1] |= 0x80;
    out.splice(header..header, mask);
    apply_mask(&mut out[header + 4..], mask);
    out
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
