//! The client dialogs of a core's sessions, found by what an in-dialog
//! request carries (RFC 3261 §12): Call-ID, the client's tag and ours.
//!
//! Keyed by Call-ID alone, so that a lookup borrows the request's strings
//! instead of building a key: the sessions sharing a Call-ID are few (the
//! sessions of one fan-out, a client reusing a Call-ID for a new INVITE).

use ahash::HashMap;
use smallvec::SmallVec;

struct Dialog {
    client_tag: String,
    our_tag: String,
    session: String,
    /// One of the sessions of a fan-out: they share the client's tag and
    /// differ by ours, so only the full id tells them apart.
    fanout: bool,
}

/// Dialogs kept per Call-ID. RFC 3261 §8.1.1.4 makes a Call-ID unique to
/// its dialog: sharing one is a fan-out's (one dialog per app server asked)
/// or a client's that reuses it. Past this many (a fan-out asks at most the
/// 64 app servers a service may list), the oldest is forgotten, so that a
/// client sending INVITE after INVITE with one Call-ID cannot make every
/// lookup of it a long scan.
const MAX_PER_CALL_ID: usize = 64;

#[derive(Default)]
pub struct ClientDialogs {
    /// Oldest first: when two dialogs match, the newer one is the session.
    by_call_id: HashMap<String, SmallVec<[Dialog; 1]>>,
}

impl ClientDialogs {
    pub fn insert(
        &mut self,
        call_id: &str,
        client_tag: &str,
        our_tag: &str,
        session: &str,
        fanout: bool,
    ) {
        let dialogs = self.by_call_id.entry(call_id.to_string()).or_default();
        if dialogs.len() == MAX_PER_CALL_ID {
            dialogs.remove(0);
        }
        dialogs.push(Dialog {
            client_tag: client_tag.to_string(),
            our_tag: our_tag.to_string(),
            session: session.to_string(),
            fanout,
        });
    }

    /// Forgets the dialogs of `session` under `call_id`.
    pub fn remove(&mut self, call_id: &str, session: &str) {
        let Some(dialogs) = self.by_call_id.get_mut(call_id) else {
            return;
        };
        dialogs.retain(|d| d.session != session);
        if dialogs.is_empty() {
            self.by_call_id.remove(call_id);
        }
    }

    /// The session of the dialog (Call-ID, client tag, our tag).
    pub fn exact(&self, call_id: &str, client_tag: &str, our_tag: &str) -> Option<&str> {
        self.newest(call_id, |d| {
            d.client_tag == client_tag && d.our_tag == our_tag
        })
    }

    /// The session of a request of the client: by the full dialog id when
    /// it has our tag and the tag is known, else by Call-ID and client tag
    /// (a request without our tag, or a tag we never gave), fan-out
    /// sessions excepted as they are told apart only by our tag.
    pub fn of_request(
        &self,
        call_id: &str,
        client_tag: &str,
        our_tag: Option<&str>,
    ) -> Option<&str> {
        our_tag
            .and_then(|ours| self.exact(call_id, client_tag, ours))
            .or_else(|| self.newest(call_id, |d| d.client_tag == client_tag && !d.fanout))
    }

    fn newest(&self, call_id: &str, matches: impl Fn(&Dialog) -> bool) -> Option<&str> {
        self.by_call_id
            .get(call_id)?
            .iter()
            .rev()
            .find(|d| matches(d))
            .map(|d| d.session.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_dialog_id_tells_fanout_sessions_apart() {
        let mut d = ClientDialogs::default();
        d.insert("c1", "ct", "ours-a", "a", true);
        d.insert("c1", "ct", "ours-b", "b", true);
        assert_eq!(d.of_request("c1", "ct", Some("ours-a")), Some("a"));
        assert_eq!(d.of_request("c1", "ct", Some("ours-b")), Some("b"));
        assert_eq!(d.exact("c1", "ct", "ours-b"), Some("b"));
        // Without our tag a fan-out session cannot be named.
        assert_eq!(d.of_request("c1", "ct", None), None);
        assert_eq!(d.of_request("c1", "ct", Some("unknown")), None);
    }

    #[test]
    fn without_our_tag_the_call_id_and_client_tag_find_the_session() {
        let mut d = ClientDialogs::default();
        d.insert("c1", "ct", "ours", "s", false);
        assert_eq!(d.of_request("c1", "ct", None), Some("s"));
        assert_eq!(d.of_request("c1", "ct", Some("stale")), Some("s"));
        assert_eq!(d.of_request("c1", "other", None), None);
        assert_eq!(d.of_request("c2", "ct", None), None);
        assert_eq!(d.exact("c1", "ct", "stale"), None);
    }

    #[test]
    fn a_reused_call_id_finds_the_newer_session_and_the_older_once_it_goes() {
        let mut d = ClientDialogs::default();
        d.insert("c1", "ct", "ours-1", "old", false);
        d.insert("c1", "ct", "ours-2", "new", false);
        assert_eq!(d.of_request("c1", "ct", None), Some("new"));
        assert_eq!(d.of_request("c1", "ct", Some("ours-1")), Some("old"));
        d.remove("c1", "new");
        assert_eq!(d.of_request("c1", "ct", None), Some("old"));
        d.remove("c1", "old");
        assert!(d.by_call_id.is_empty(), "an empty Call-ID entry is dropped");
        d.remove("c1", "old");
    }

    #[test]
    fn a_call_id_keeps_its_newest_dialogs_only() {
        let mut d = ClientDialogs::default();
        for n in 0..=MAX_PER_CALL_ID {
            d.insert("c1", "ct", &format!("ours-{n}"), &format!("s{n}"), false);
        }
        assert_eq!(d.by_call_id["c1"].len(), MAX_PER_CALL_ID);
        assert_eq!(d.exact("c1", "ct", "ours-0"), None, "the oldest went");
        assert_eq!(d.exact("c1", "ct", "ours-1"), Some("s1"));
        let newest = format!("s{MAX_PER_CALL_ID}");
        assert_eq!(d.of_request("c1", "ct", None), Some(newest.as_str()));
    }
}
