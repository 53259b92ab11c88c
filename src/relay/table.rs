//! The sessions a relay core holds, with the indexes that route each SIP
//! event to its session. Owned by the core task alone: no locks.

// aHash, randomly keyed per table (keys come from the network): cheaper
// than std's SipHash on the relay's every lookup, as resistant to flooding.
use ahash::HashMap;

use super::client_dialogs::ClientDialogs;
use super::session::{AsLeg, ClientLeg, Session};
use crate::sip::transaction::{ClientTxId, ServerTxId};

/// What a client transaction of ours is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The inquiry INVITE on AS leg n.
    AsInvite(usize),
    /// The INVITE on AS leg n that is to take an established session over
    /// (session change, transfer).
    Takeover(usize),
    /// A BYE, CANCEL or refresh we sent; its answer only closes it.
    Closing,
    /// A copy of the in-dialog request of this server transaction.
    Relay(ServerTxId),
    /// Our re-INVITE of the client carrying the offer of the app server a
    /// REFER transfers the session to (RFC 3725 flow I).
    TransferReinvite,
}

#[derive(Default)]
pub struct SessionTable {
    /// Boxed: a session is large, and a table of tens of thousands of them
    /// (ended ones linger) would move them all on every resize, touching
    /// fresh pages for the whole table (page faults were 2 % of the CPU at
    /// 2,000 calls/s).
    sessions: HashMap<String, Box<Session>>,
    /// Client dialog → session.
    client_dialogs: ClientDialogs,
    /// AS-leg Call-ID → (session, leg index).
    by_as_call_id: HashMap<String, (String, usize)>,
    by_client_tx: HashMap<ClientTxId, (String, Purpose)>,
    /// The client's INVITE transaction → session.
    by_invite_tx: HashMap<ServerTxId, String>,
    /// Live sessions per client id (for `max_sessions`).
    per_client: HashMap<String, u32>,
    /// The client transactions ever indexed for a session, so that removing
    /// it does not scan every transaction of the node.
    txs_of: HashMap<String, Vec<ClientTxId>>,
}

impl SessionTable {
    pub fn insert(&mut self, s: Session) {
        let id = s.id.clone();
        index_client_dialog(&mut self.client_dialogs, &s);
        self.by_invite_tx.insert(s.client_leg.invite_tx, id.clone());
        if let Some(c) = &s.client {
            *self.per_client.entry(c.id.clone()).or_default() += 1;
        }
        self.sessions.insert(id, Box::new(s));
    }

    pub fn service_of(&self, id: &str) -> Option<String> {
        self.sessions.get(id).and_then(|s| s.service_id.clone())
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.sessions.get_mut(id).map(|s| &mut **s)
    }

    /// Outbound leg `index` of session `id`.
    pub fn leg_mut(&mut self, id: &str, index: usize) -> Option<&mut AsLeg> {
        self.sessions.get_mut(id)?.as_legs.get_mut(index)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.sessions.contains_key(id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn live_for_client(&self, client_id: &str) -> u32 {
        self.per_client.get(client_id).copied().unwrap_or(0)
    }

    /// Called once when a session ends: it no longer counts against its
    /// client's limit (its entry stays for late messages until `remove`).
    pub fn release_client_slot(&mut self, client_id: &str) {
        if let Some(n) = self.per_client.get_mut(client_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(client_id);
            }
        }
    }

    pub fn index_as_leg(&mut self, call_id: &str, session: &str, leg: usize) {
        self.by_as_call_id
            .insert(call_id.to_string(), (session.to_string(), leg));
    }

    pub fn index_tx(&mut self, tx: ClientTxId, session: &str, purpose: Purpose) {
        self.by_client_tx.insert(tx, (session.to_string(), purpose));
        self.txs_of.entry(session.to_string()).or_default().push(tx);
    }

    pub fn tx(&self, tx: &ClientTxId) -> Option<(String, Purpose)> {
        self.by_client_tx.get(tx).cloned()
    }

    pub fn forget_tx(&mut self, tx: &ClientTxId) {
        self.by_client_tx.remove(tx);
    }

    /// The session of a request in a client dialog (see
    /// [`ClientDialogs::of_request`]).
    pub fn by_client_request(
        &self,
        call_id: &str,
        client_tag: &str,
        our_tag: Option<&str>,
    ) -> Option<String> {
        self.client_dialogs
            .of_request(call_id, client_tag, our_tag)
            .map(str::to_string)
    }

    /// The session of the client dialog (Call-ID, client tag, our tag).
    pub fn by_dialog_id(&self, call_id: &str, client_tag: &str, our_tag: &str) -> Option<String> {
        self.client_dialogs
            .exact(call_id, client_tag, our_tag)
            .map(str::to_string)
    }

    pub fn by_as_call_id(&self, call_id: &str) -> Option<(String, usize)> {
        self.by_as_call_id.get(call_id).cloned()
    }

    /// A later INVITE of the client (one with Replaces) concerns session
    /// `id`: a CANCEL of it finds the session.
    pub fn index_invite_tx(&mut self, tx: ServerTxId, id: &str) {
        self.by_invite_tx.insert(tx, id.to_string());
    }

    /// Session `id` goes on in another client dialog (RFC 3891): `leg`
    /// replaces its client leg in the session and the indexes; the old leg
    /// is returned.
    pub fn replace_client_leg(&mut self, id: &str, leg: ClientLeg) -> Option<ClientLeg> {
        let s = self.sessions.get_mut(id)?;
        let old = std::mem::replace(&mut s.client_leg, leg);
        self.client_dialogs.remove(&old.call_id, id);
        remove_if_owned(&mut self.by_invite_tx, &old.invite_tx, |sid| sid == id);
        index_client_dialog(&mut self.client_dialogs, s);
        Some(old)
    }

    pub fn by_invite_tx(&self, tx: &ServerTxId) -> Option<String> {
        self.by_invite_tx.get(tx).cloned()
    }

    /// Drops a session and every index entry still pointing at it. A key
    /// may since have been taken by a newer session (a client reusing its
    /// Call-ID and tag for a new INVITE): that entry is the newer session's
    /// and stays.
    pub fn remove(&mut self, id: &str) -> Option<Session> {
        let s = *self.sessions.remove(id)?;
        self.client_dialogs.remove(&s.client_leg.call_id, id);
        remove_if_owned(&mut self.by_invite_tx, &s.client_leg.invite_tx, |sid| {
            sid == id
        });
        for leg in &s.as_legs {
            remove_if_owned(&mut self.by_as_call_id, &leg.call_id, |(sid, _)| sid == id);
        }
        for tx in self.txs_of.remove(id).unwrap_or_default() {
            remove_if_owned(&mut self.by_client_tx, &tx, |(sid, _)| sid == id);
        }
        Some(s)
    }
}

fn index_client_dialog(dialogs: &mut ClientDialogs, s: &Session) {
    let c = &s.client_leg;
    dialogs.insert(&c.call_id, &c.remote_tag, &c.local_tag, &s.id, s.fanout);
}

/// Removes `key` from `map` only when its value still belongs to the caller.
fn remove_if_owned<K, V, Q>(map: &mut HashMap<K, V>, key: &Q, owned: impl Fn(&V) -> bool)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if map.get(key).is_some_and(owned) {
        map.remove(key);
    }
}
