//! `POST /v1/rules/evaluate`: a dry run of the relay's search on a SIP
//! request given as text, against the live in-memory configuration. Says
//! which rule, service and app servers would be chosen, and why each
//! earlier rule did not match.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::JsonBody;
use super::problem::docs::CreateErrors;
use super::problem::ApiResult;
use super::{validate, AppState};
use crate::relay::request_view::{RequestContext, RequestView};
use crate::relay::rules::{CompiledRule, Condition};
use crate::sip::message::{Limits, Message};
use crate::store::app_servers::AppServer;
use crate::store::rules::Rule;
use crate::store::services::{Service, Strategy};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The SIP request as text; LF line ends are accepted and
    /// Content-Length is recomputed.
    #[schema(
        example = "INVITE sip:voicemail@sip.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:alice@sip.example.com>;tag=1\r\nTo: <sip:voicemail@sip.example.com>\r\nCall-ID: 1@192.0.2.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )]
    pub request: String,
    /// Evaluate as if this client had authenticated.
    pub client_id: Option<String>,
    /// Evaluate as if the request came from this address.
    #[schema(example = "192.0.2.1")]
    pub source_ip: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Evaluation {
    /// What the relay would do: `route`, `404` (no rule matches) or `503`
    /// (no app server available).
    #[schema(example = "route")]
    pub outcome: String,
    /// The request as the rules saw it.
    pub request: RequestSummary,
    /// The matching rule.
    pub rule: Option<Rule>,
    pub service: Option<Service>,
    /// The app server tried first.
    pub app_server: Option<AppServer>,
    /// Every usable app server in the order the strategy would try them
    /// (`parallel`: all at once).
    pub app_servers: Vec<AppServer>,
    /// Headers that would be added to the inquiry (the rule's `set`).
    pub set: BTreeMap<String, String>,
    /// Each rule evaluated, in order, up to the one that matched.
    pub trace: Vec<RuleVerdict>,
    /// App servers of the pool left out, and why.
    pub skipped: Vec<SkippedAppServer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestSummary {
    #[schema(example = "INVITE")]
    pub method: String,
    pub request_uri_user: Option<String>,
    pub request_uri_domain: String,
    /// Media types of the SDP offer.
    pub sdp_media: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleVerdict {
    pub rule_id: String,
    pub rule_name: Option<String>,
    pub priority: i32,
    pub matched: bool,
    /// Why it did not match (the first condition that failed).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedAppServer {
    pub app_server_id: String,
    pub reason: String,
}

/// Dry-run the routing rules on a SIP request.
#[utoipa::path(post, operation_id = "evaluate_rules", path = "/v1/rules/evaluate", tag = "rules", request_body = EvaluateRequest,
    responses((status = 200, description = "What the relay would choose, and why", body = Evaluation), CreateErrors))]
async fn evaluate(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<EvaluateRequest>,
) -> ApiResult<Json<Evaluation>> {
    caller.require_admin()?;
    let message = parse_request(&req.request)?;
    let source: Option<IpAddr> =
        match &req.source_ip {
            None => None,
            Some(ip) => Some(ip.parse().map_err(|_| {
                validate::invalid("source_ip", format!("'{ip}' is not an IP address"))
            })?),
        };
    let catalog = s.catalog.snapshot();
    if let Some(id) = &req.client_id {
        if !catalog.clients_by_username.values().any(|c| &c.id == id) {
            return Err(validate::invalid(
                "client_id",
                format!("no client with id '{id}'"),
            ));
        }
    }
    let ctx = RequestContext {
        client_id: req.client_id.as_deref(),
        source,
    };
    let verdicts = catalog.rules.explain(&message, &ctx);
    let trace = verdicts
        .iter()
        .map(|(r, v)| RuleVerdict {
            rule_id: r.rule.id.clone(),
            rule_name: r.rule.name.clone(),
            priority: r.rule.priority,
            matched: v.is_ok(),
            reason: v.err().map(|c| explain(c, r, &message, &ctx)),
        })
        .collect();
    let mut eval = Evaluation {
        outcome: "404".into(),
        request: summarize(&message),
        rule: None,
        service: None,
        app_server: None,
        app_servers: Vec::new(),
        set: BTreeMap::new(),
        trace,
        skipped: Vec::new(),
    };
    let Some((matched, _)) = verdicts.iter().find(|(_, v)| v.is_ok()) else {
        return Ok(Json(eval));
    };
    eval.rule = Some(matched.rule.clone());
    eval.set = matched.rule.set.clone();
    let Some(entry) = catalog.services.get(&matched.rule.service_id) else {
        eval.outcome = "503".into();
        return Ok(Json(eval));
    };
    let selection = catalog.select(entry, false);
    eval.service = Some(entry.service.clone());
    eval.app_servers = selection.candidates.iter().map(|a| (*a).clone()).collect();
    eval.app_server = eval.app_servers.first().cloned();
    eval.skipped = selection
        .skipped
        .iter()
        .map(|(id, why)| SkippedAppServer {
            app_server_id: id.to_string(),
            reason: why.as_str().into(),
        })
        .collect();
    eval.outcome = if eval.app_servers.is_empty() {
        "503"
    } else {
        "route"
    }
    .into();
    if entry.service.strategy == Strategy::Parallel {
        eval.app_server = None;
    }
    Ok(Json(eval))
}

/// Parses pasted text: line ends normalised to CRLF and Content-Length set
/// to the body actually given, so that what the operator sees is evaluated.
fn parse_request(text: &str) -> ApiResult<Message> {
    let normalised = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let (head, body) = match normalised.split_once("\r\n\r\n") {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (
            normalised.trim_end_matches("\r\n").to_string(),
            String::new(),
        ),
    };
    let mut out = String::with_capacity(normalised.len() + 24);
    for (i, line) in head.split("\r\n").enumerate() {
        let name = line.split(':').next().unwrap_or_default().trim();
        if i > 0 && (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let message = Message::parse_text(&out, &Limits::default())
        .map_err(|e| validate::invalid("request", format!("not a SIP request: {e}")))?;
    if !message.is_request() {
        return Err(validate::invalid(
            "request",
            "is a SIP response; give a request",
        ));
    }
    message
        .request_uri()
        .map_err(|e| validate::invalid("request", format!("bad Request-URI: {e}")))?;
    Ok(message)
}

fn summarize(m: &Message) -> RequestSummary {
    let sdp_media = m
        .sdp()
        .map(|sdp| {
            sdp.split(|&b| b == b'\n')
                .filter_map(|l| l.strip_prefix(b"m="))
                .filter_map(|l| l.split(|&b| b == b' ').next())
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect()
        })
        .unwrap_or_default();
    RequestSummary {
        method: RequestView::method(m).into_owned(),
        request_uri_user: m.request_uri_user().map(Cow::into_owned),
        request_uri_domain: m.request_uri_host().into_owned(),
        sdp_media,
    }
}

/// Says in words why `rule` failed on `condition`.
fn explain(
    condition: Condition,
    rule: &CompiledRule,
    m: &Message,
    ctx: &RequestContext<'_>,
) -> String {
    let want = &rule.rule.match_;
    let user = m.request_uri_user();
    let user = user
        .as_deref()
        .map_or("(none)".to_string(), |u| format!("'{u}'"));
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match condition {
        Condition::Disabled => "the rule is disabled".into(),
        Condition::Method => format!(
            "method: {} is not {}",
            RequestView::method(m),
            opt(&want.method)
        ),
        Condition::RequestUriUser => format!(
            "request_uri_user: {user} is not '{}'",
            opt(&want.request_uri_user)
        ),
        Condition::RequestUriUserRegex => format!(
            "request_uri_user_regex: {user} does not match {}",
            opt(&want.request_uri_user_regex)
        ),
        Condition::RequestUriDomain => format!(
            "request_uri_domain: '{}' is not '{}'",
            m.request_uri_host(),
            opt(&want.request_uri_domain)
        ),
        Condition::Header => {
            let name = want
                .header
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_default();
            if m.headers_named(&name).next().is_none() {
                format!("header: the request has no {name} header")
            } else {
                format!("header: no {name} value satisfies the condition")
            }
        }
        Condition::SdpMedia => format!(
            "sdp_media: the offer has no '{}' media",
            opt(&want.sdp_media)
        ),
        Condition::ClientIds => match ctx.client_id {
            Some(c) => format!("client_ids: client '{c}' is not listed"),
            None => "client_ids: no authenticated client (give client_id)".into(),
        },
        Condition::SourceCidr => match ctx.source {
            Some(ip) => format!("source_cidr: {ip} is not in {}", opt(&want.source_cidr)),
            None => "source_cidr: no source address (give source_ip)".into(),
        },
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(evaluate))
}
