//! The rule set held in memory: rules compiled once (regular expressions,
//! networks) when the configuration changes, then evaluated on each request
//! in priority order without allocating.

use std::fmt;

use ipnet::IpNet;
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use super::request_view::{sdp_has_media, RequestContext, RequestView};
use crate::store::rules::{Rule, RuleMatch};

/// Why a rule's match definition cannot be compiled; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("match.{field}: {problem}")]
pub struct RuleCompileError {
    pub field: &'static str,
    pub problem: String,
}

#[derive(Debug)]
enum HeaderTest {
    Equals(String),
    Regex(BytesRegex),
}

/// A rule ready for evaluation.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    user_regex: Option<Regex>,
    header: Option<(String, HeaderTest)>,
    source: Option<IpNet>,
}

/// The first condition of a rule that a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Disabled,
    RequestUriUser,
    RequestUriUserRegex,
    RequestUriDomain,
    Method,
    Header,
    SdpMedia,
    ClientIds,
    SourceCidr,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disabled => "enabled",
            Self::RequestUriUser => "request_uri_user",
            Self::RequestUriUserRegex => "request_uri_user_regex",
            Self::RequestUriDomain => "request_uri_domain",
            Self::Method => "method",
            Self::Header => "header",
            Self::SdpMedia => "sdp_media",
            Self::ClientIds => "client_ids",
            Self::SourceCidr => "source_cidr",
        })
    }
}

/// Checks a rule's conditions as an operator wants at provisioning time.
pub fn validate_match(m: &RuleMatch) -> Result<(), RuleCompileError> {
    compile_match(m).map(|_| ())
}

type Compiled = (Option<Regex>, Option<(String, HeaderTest)>, Option<IpNet>);

fn compile_match(m: &RuleMatch) -> Result<Compiled, RuleCompileError> {
    let err = |field, problem: String| RuleCompileError { field, problem };
    let user_regex = m
        .request_uri_user_regex
        .as_deref()
        .map(|r| {
            // Checked alone first: "a)|(.*" is invalid, but would compile
            // once wrapped and then match everything.
            Regex::new(r).map_err(|e| err("request_uri_user_regex", one_line(&e)))?;
            Regex::new(&anchor(r)).map_err(|e| err("request_uri_user_regex", one_line(&e)))
        })
        .transpose()?;
    let header = match &m.header {
        None => None,
        Some(h) => {
            if h.name.is_empty() || !h.name.bytes().all(is_token_byte) {
                return Err(err(
                    "header.name",
                    format!("'{}' is not a header name", h.name),
                ));
            }
            let test = match (&h.equals, &h.regex) {
                (Some(v), None) => HeaderTest::Equals(v.clone()),
                (None, Some(r)) => HeaderTest::Regex(
                    BytesRegex::new(r).map_err(|e| err("header.regex", one_line(&e)))?,
                ),
                _ => {
                    return Err(err(
                        "header",
                        "give exactly one of `equals` and `regex`".into(),
                    ))
                }
            };
            Some((h.name.clone(), test))
        }
    };
    let source = m
        .source_cidr
        .as_deref()
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(
                        "source_cidr",
                        format!("'{c}' is not a network such as 10.0.0.0/8"),
                    )
                })
        })
        .transpose()?;
    if let Some(method) = &m.method {
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            return Err(err(
                "method",
                format!("'{method}' is not a SIP method token"),
            ));
        }
    }
    if let Some(media) = &m.sdp_media {
        if media.is_empty() || !media.bytes().all(is_token_byte) {
            return Err(err(
                "sdp_media",
                format!("'{media}' is not an SDP media type"),
            ));
        }
    }
    Ok((user_regex, header, source))
}

/// The user regex must match the whole user part, as operators expect.
fn anchor(r: &str) -> String {
    format!("^(?:{r})$")
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 3261 §25.1 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

impl CompiledRule {
    /// The headers of the rule's `set`, for the app server it chooses.
    pub fn attributes(&self) -> Vec<(String, String)> {
        self.rule
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn new(rule: Rule) -> Result<Self, RuleCompileError> {
        let (user_regex, header, source) = compile_match(&rule.match_)?;
        Ok(Self {
            rule,
            user_regex,
            header,
            source,
        })
    }

    /// Checks every condition; the error names the first that failed.
    pub fn check(&self, req: &dyn RequestView, ctx: &RequestContext<'_>) -> Result<(), Condition> {
        let m = &self.rule.match_;
        if !self.rule.enabled {
            return Err(Condition::Disabled);
        }
        if let Some(method) = &m.method {
            if req.method() != method.as_str() {
                return Err(Condition::Method);
            }
        }
        if m.request_uri_user.is_some() || self.user_regex.is_some() {
            let user = req.request_uri_user();
            if let Some(want) = &m.request_uri_user {
                if user.as_deref() != Some(want.as_str()) {
                    return Err(Condition::RequestUriUser);
                }
            }
            if let Some(re) = &self.user_regex {
                if !user.as_deref().is_some_and(|u| re.is_match(u)) {
                    return Err(Condition::RequestUriUserRegex);
                }
            }
        }
        if let Some(domain) = &m.request_uri_domain {
            if !req.request_uri_host().eq_ignore_ascii_case(domain) {
                return Err(Condition::RequestUriDomain);
            }
        }
        if let Some((name, test)) = &self.header {
            let hit = req.any_header_value(name, &mut |v| match test {
                HeaderTest::Equals(want) => v == want.as_bytes(),
                HeaderTest::Regex(re) => re.is_match(v),
            });
            if !hit {
                return Err(Condition::Header);
            }
        }
        if let Some(media) = &m.sdp_media {
            if !req.sdp().is_some_and(|sdp| sdp_has_media(sdp, media)) {
                return Err(Condition::SdpMedia);
            }
        }
        if let Some(ids) = &m.client_ids {
            if !ctx.client_id.is_some_and(|c| ids.iter().any(|id| id == c)) {
                return Err(Condition::ClientIds);
            }
        }
        if let Some(net) = &self.source {
            if !ctx.source.is_some_and(|ip| net.contains(&ip)) {
                return Err(Condition::SourceCidr);
            }
        }
        Ok(())
    }
}

/// All rules in evaluation order: priority ascending, then creation order.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// Compiles `rules`; a rule that no longer compiles (stored before a
    /// stricter check existed) is skipped with a warning rather than taking
    /// routing down.
    pub fn new(mut rules: Vec<Rule>) -> Self {
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let rules = rules
            .into_iter()
            .filter_map(|r| {
                let id = r.id.clone();
                CompiledRule::new(r)
                    .map_err(|e| tracing::warn!(rule = %id, error = %e, "rule skipped"))
                    .ok()
            })
            .collect();
        Self { rules }
    }

    /// The first rule whose conditions all hold.
    pub fn search(&self, req: &dyn RequestView, ctx: &RequestContext<'_>) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.check(req, ctx).is_ok())
    }

    /// Every rule with its verdict, in evaluation order, up to and including
    /// the first match: the "why" of a dry run.
    pub fn explain(
        &self,
        req: &dyn RequestView,
        ctx: &RequestContext<'_>,
    ) -> Vec<(&CompiledRule, Result<(), Condition>)> {
        let mut out = Vec::new();
        for r in &self.rules {
            let verdict = r.check(req, ctx);
            let matched = verdict.is_ok();
            out.push((r, verdict));
            if matched {
                break;
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
