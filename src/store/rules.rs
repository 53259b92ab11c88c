//! Routing rules: ordered conditions on a request that choose a service and
//! the attributes passed on to the app server (SPEC §2 step 3, §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{new_id, on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

/// Conditions of a rule; all given must hold, an empty match matches every
/// request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    /// Request-URI user part, exact (after %-unescaping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "voicemail")]
    pub request_uri_user: Option<String>,
    /// Regular expression the whole Request-URI user part must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "^\\+4930[0-9]+$")]
    pub request_uri_user_regex: Option<String>,
    /// Request-URI host, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "sip.example.com")]
    pub request_uri_domain: Option<String>,
    /// SIP method, e.g. `INVITE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "INVITE")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderCondition>,
    /// A media type the SDP offer must contain (`audio`, `video`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "video")]
    pub sdp_media: Option<String>,
    /// The authenticated client must be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ids: Option<Vec<String>>,
    /// The request's source address must lie in this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "10.0.0.0/8")]
    pub source_cidr: Option<String>,
}

/// A condition on one header: exactly one of `equals` and `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    /// Header name, case-insensitive; compact forms are equivalent.
    #[schema(example = "X-Tier")]
    pub name: String,
    /// Some value of the header equals this (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "gold")]
    pub equals: Option<String>,
    /// Some value of the header matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rule {
    pub id: String,
    #[schema(example = "voicemail by number")]
    pub name: Option<String>,
    /// Lower is evaluated first.
    #[schema(example = 100)]
    pub priority: i32,
    pub enabled: bool,
    #[serde(rename = "match")]
    pub match_: RuleMatch,
    pub service_id: String,
    /// Headers added to the inquiry sent to the app server.
    #[schema(example = json!({"X-Tier": "gold"}))]
    pub set: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    name: Option<String>,
    priority: i32,
    enabled: bool,
    match_json: String,
    service_id: String,
    set_json: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<RuleRow> for Rule {
    type Error = StoreError;
    fn try_from(r: RuleRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("rule {} {what}: {e}", r.id))
        };
        Ok(Rule {
            match_: serde_json::from_str(&r.match_json).map_err(|e| corrupt("match", e))?,
            set: serde_json::from_str(&r.set_json).map_err(|e| corrupt("set", e))?,
            id: r.id,
            name: r.name,
            priority: r.priority,
            enabled: r.enabled,
            service_id: r.service_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Clone)]
pub struct RuleFields {
    pub name: Option<String>,
    pub priority: i32,
    pub enabled: bool,
    pub match_: RuleMatch,
    pub service_id: String,
    pub set: BTreeMap<String, String>,
}

impl From<Rule> for RuleFields {
    fn from(r: Rule) -> Self {
        Self {
            name: r.name,
            priority: r.priority,
            enabled: r.enabled,
            match_: r.match_,
            service_id: r.service_id,
            set: r.set,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RuleFilter {
    pub service_id: Option<String>,
    pub enabled: Option<bool>,
}

const COLUMNS: &str =
    "id, name, priority, enabled, match_json, service_id, set_json, created_at, updated_at";

fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    pub async fn create_rule(&self, f: &RuleFields) -> StoreResult<Rule> {
        let sql = format!(
            "INSERT INTO rules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
        );
        let (match_json, set_json) = (to_json(&f.match_)?, to_json(&f.set)?);
        let row = on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(&sql)
            .bind(new_id())
            .bind(&f.name)
            .bind(f.priority)
            .bind(f.enabled)
            .bind(&match_json)
            .bind(&f.service_id)
            .bind(&set_json)
            .bind(Timestamp::now())
            .fetch_one(p)
            .await)
        .map_err(StoreError::classify)?;
        row.try_into()
    }

    pub async fn get_rule(&self, id: &str) -> StoreResult<Rule> {
        let sql = format!("SELECT {COLUMNS} FROM rules WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)?
        .try_into()
    }

    pub async fn list_rules(
        &self,
        filter: &RuleFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rule>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rules
             WHERE ($1 IS NULL OR service_id = $1) AND ($2 IS NULL OR enabled = $2) AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(&sql)
            .bind(&filter.service_id)
            .bind(filter.enabled)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        let rules = rows
            .into_iter()
            .map(Rule::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(rules, page, |r| &r.id))
    }

    /// Every rule in evaluation order (priority, then age).
    pub async fn all_rules(&self) -> StoreResult<Vec<Rule>> {
        let sql = format!("SELECT {COLUMNS} FROM rules ORDER BY priority, id");
        let rows = on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(&sql)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(Rule::try_from).collect()
    }

    pub async fn update_rule(&self, id: &str, f: &RuleFields) -> StoreResult<Rule> {
        let sql = format!(
            "UPDATE rules SET name = $2, priority = $3, enabled = $4, match_json = $5, service_id = $6,
                    set_json = $7, updated_at = $8
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let (match_json, set_json) = (to_json(&f.match_)?, to_json(&f.set)?);
        on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(&sql)
            .bind(id)
            .bind(&f.name)
            .bind(f.priority)
            .bind(f.enabled)
            .bind(&match_json)
            .bind(&f.service_id)
            .bind(&set_json)
            .bind(Timestamp::now())
            .fetch_optional(p)
            .await)
        .map_err(StoreError::classify)?
        .ok_or(StoreError::NotFound)?
        .try_into()
    }

    pub async fn delete_rule(&self, id: &str) -> StoreResult<()> {
        self.delete_row("rules", id, "rule").await
    }
}
