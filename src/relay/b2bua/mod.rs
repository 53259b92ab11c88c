//! The call flow of SPEC §2: reception, authentication, search, inquiry,
//! response relay, confirmation, and the ways a session ends.

mod answers;
mod change;
mod charges;
mod dialogs;
mod ending;
mod fanout;
mod inbound;
mod midcall;
mod outbound;
mod refer;
mod reinvite;
mod replaces;
mod segments;
mod session_timer;
mod transfer;

pub use fanout::FanOuts;
pub use midcall::Midcall;

use super::core::{Core, CoreTimer};
use super::legs::{self, Inquiry};
use super::request_view::RequestContext;
use super::session::{AsLeg, ClientLeg, LegState, Session, State};
use super::table::Purpose;
use super::timers::TimerService;
use crate::sip::message::{Message, Method, NameAddr};
use crate::sip::transaction::{ClientTxId, ServerTxId};
use crate::sip::transport::Flow;
use crate::store::sessions::SessionChange;
use crate::store::{new_id, Timestamp};
use outbound::settle_inquiry_timers;

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first Contact URI of a message.
pub(super) fn contact_of(msg: &Message) -> Option<String> {
    msg.first_contact().map(|a| uri_of(&a))
}

/// The URI of a From/To/Contact value.
pub(super) fn uri_of(na: &NameAddr<'_>) -> String {
    text(na.uri().raw())
}
