//! SIP message layer: parsing, framing, typed header views and rendering
//! (RFC 3261 §7, §18.3, §20, §25).
//!
//! Pipeline:
//! 1. transport framing — datagrams are whole messages; streams go through
//!    [`frame_stream`] (incomplete ≠ invalid, CRLF keep-alives reported);
//! 2. [`parse_datagram`] / [`parse_stream_frame`]: line syntax only, limits
//!    enforced before allocating, one `Bytes` buffer + byte ranges;
//! 3. [`Message::validate`]: typed checks of the headers the core relies
//!    on; typed views ([`Via`], [`NameAddr`], [`CSeq`], [`Uri`] ...) are
//!    parsed lazily and borrow from the buffer, and the top Via, From, To
//!    and Request-URI that `validate` parsed are kept with the message
//!    (`views`), so reading them again costs no parse;
//! 4. [`ResponseBuilder`], [`MessageBuilder`], [`Editor`] render new or
//!    modified messages, copying untouched header lines verbatim.
//!
//! On a parse error the engine may call [`Message::salvage`] to recover a
//! request head and answer with [`ParseError::status_code`] when
//! [`Message::is_answerable`]; otherwise the input is dropped.

mod auth;
mod cseq;
mod digits;
mod edit;
mod error;
mod framing;
mod header;
mod limits;
mod method;
mod msg;
mod name_addr;
mod params;
mod parse;
mod render;
mod scalar;
mod scan;
mod uri;
mod validate;
mod via;
mod via_stamp;
mod views;

pub use auth::Credentials;
pub use cseq::CSeq;
pub use digits::{push_decimal, push_host_port, push_ip, AsciiOut};
pub use edit::Editor;
pub use error::{BuildError, ParseError};
pub use framing::{frame_stream, is_keepalive, Frame};
pub use header::HeaderName;
pub use limits::{LimitKind, Limits};
pub use method::Method;
pub use msg::{unfold, HeaderField, Message};
pub use name_addr::{Contact, NameAddr};
pub use params::{Param, ParamIter, Params};
pub use parse::{parse_datagram, parse_stream_frame};
pub use render::{MessageBuilder, ResponseBuilder};
pub use scalar::MediaType;
pub use scan::{unquote, CommaSplit};
pub use uri::{unescape, Host, HostKind, Scheme, Uri};
pub use via::{Rport, Via, BRANCH_MAGIC};
pub use via_stamp::ViaStamp;
