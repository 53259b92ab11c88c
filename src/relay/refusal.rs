//! The final refusal a client gets when no app server answers 2xx (RFC
//! 3261 §16.7): which one of those received, and in what form.

/// RFC 3261 §16.7 step 6: which of the final refusals `codes` (in the order
/// they came) goes to the client. A 6xx wins; otherwise the lowest class.
/// Within 4xx, responses that let the client resubmit usefully come first
/// (415, 420, 484); 401 and 407 come last, see [`relayable`]. Within 5xx a
/// 503 comes last (it would say Switchboard itself is unavailable).
/// Between equals the first one stays.
pub fn best_response(codes: &[u16]) -> Option<usize> {
    fn rank(code: u16) -> (u16, u8) {
        let class = if (600..700).contains(&code) {
            0
        } else {
            code / 100
        };
        let within = match code {
            415 | 420 | 484 => 0,
            401 | 407 | 503 => 2,
            _ => 1,
        };
        (class, within)
    }
    codes
        .iter()
        .enumerate()
        .min_by_key(|(i, code)| (rank(**code), *i))
        .map(|(i, _)| i)
}

/// A refusal as the client may receive it from Switchboard:
/// - 503 becomes 500 (RFC 3261 §16.7: a 503 passed upstream would say
///   that every request to Switchboard fails, not this one);
/// - 401 and 407 become 403: the challenge is addressed to Switchboard,
///   which holds no credentials for the app server and never forwards the
///   client's, so answering it could not help (and relayed without its
///   challenge header it would be malformed, RFC 3261 §20.27, §20.44).
pub fn relayable(code: u16, reason: &str) -> (u16, String) {
    match code {
        503 => (500, "Server Internal Error".into()),
        401 | 407 => (403, "Forbidden".into()),
        _ => (code, reason.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(codes: &[u16]) -> Option<u16> {
        best_response(codes).map(|i| codes[i])
    }

    #[test]
    fn a_6xx_wins_over_any_other_class() {
        assert_eq!(best(&[486, 603, 404, 600]), Some(603));
        assert_eq!(best(&[302, 500, 606]), Some(606));
    }

    #[test]
    fn otherwise_the_lowest_class_first_come() {
        assert_eq!(best(&[503, 486, 404]), Some(486));
        assert_eq!(best(&[404, 486]), Some(404));
        assert_eq!(best(&[500, 302, 404]), Some(302));
        assert_eq!(best(&[408, 500]), Some(408));
        assert_eq!(best(&[]), None);
    }

    #[test]
    fn resubmission_hints_before_other_4xx_and_challenges_last() {
        assert_eq!(best(&[486, 415]), Some(415));
        assert_eq!(best(&[407, 480, 420]), Some(420));
        assert_eq!(best(&[401, 480]), Some(480));
        assert_eq!(best(&[407, 500]), Some(407));
    }

    #[test]
    fn a_503_only_when_no_other_5xx() {
        assert_eq!(best(&[503, 502]), Some(502));
        assert_eq!(best(&[503, 503]), Some(503));
    }

    #[test]
    fn refusals_the_client_may_not_get_as_they_are() {
        assert_eq!(
            relayable(503, "Busy"),
            (500, "Server Internal Error".into())
        );
        assert_eq!(relayable(407, "Auth"), (403, "Forbidden".into()));
        assert_eq!(relayable(401, "Auth"), (403, "Forbidden".into()));
        assert_eq!(relayable(486, "Busy Here"), (486, "Busy Here".into()));
    }
}
