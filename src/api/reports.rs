//! `/v1/reports/billing`: CDRs and charges totalled per client, service,
//! app server or day, and per currency, as JSON or CSV.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::QueryParams;
use super::problem::docs::ListErrors;
use super::problem::{ApiError, ApiResult};
use super::stream::{csv, csv_response, opt, time_range, wants_csv};
use super::AppState;
use crate::billing::report::{build, BillingReport, GroupBy, Totals};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start of the range, inclusive (RFC 3339): CDRs that ended, and
    /// charges created, at or after it. Unbounded when absent.
    pub from: Option<String>,
    /// End of the range, exclusive (RFC 3339): CDRs that ended, and charges
    /// created, before it. Unbounded when absent.
    pub to: Option<String>,
    /// `client`, `service`, `app_server` or `day` (the UTC day a CDR ended
    /// or a charge was created).
    #[param(inline)]
    pub group_by: GroupBy,
}

const CSV_COLUMNS: [&str; 11] = [
    "kind",
    "key",
    "currency",
    "sessions",
    "answered",
    "duration_ms",
    "billed_seconds",
    "time_amount",
    "charge_count",
    "charge_amount",
    "total_amount",
];

/// A report line as CSV: a group (`kind` = `group`) or a currency's total
/// over all groups (`kind` = `total`, no key).
struct Line<'a> {
    kind: &'static str,
    key: &'a Option<String>,
    currency: &'a Option<String>,
    totals: &'a Totals,
}

fn csv_fields(l: &Line) -> [String; 11] {
    let t = l.totals;
    [
        l.kind.into(),
        opt(l.key),
        opt(l.currency),
        t.sessions.to_string(),
        t.answered.to_string(),
        t.duration_ms.to_string(),
        t.billed_seconds.to_string(),
        t.time_amount.0.normalize().to_string(),
        t.charge_count.to_string(),
        t.charge_amount.0.normalize().to_string(),
        t.total_amount.0.normalize().to_string(),
    ]
}

/// Billing totals per group and currency over a time range.
///
/// CDRs are counted by when they ended, charges by when they were created;
/// the range is `[from, to)`. Amounts are exact decimal sums. With
/// `Accept: text/csv`, one row per group (`kind` = `group`) then one per
/// currency over all groups (`kind` = `total`, empty key).
#[utoipa::path(get, path = "/v1/reports/billing", operation_id = "billing_report", tag = "billing", params(ReportQuery),
    responses(
        (status = 200, description = "The report",
         content((BillingReport = "application/json"), (String = "text/csv"))),
        ListErrors))]
async fn billing(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin, Role::Billing])?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let cdrs = s.store.report_cdrs(q.group_by, from, to).await?;
    let charges = s.store.report_charges(q.group_by, from, to).await?;
    let report = build(q.group_by, from, to, &cdrs, &charges).map_err(ApiError::Internal)?;
    if !wants_csv(&headers) {
        return Ok(Json(report).into_response());
    }
    let no_key = None;
    let lines: Vec<Line> = report
        .groups
        .iter()
        .map(|g| Line {
            kind: "group",
            key: &g.key,
            currency: &g.currency,
            totals: &g.totals,
        })
        .chain(report.totals.iter().map(|t| Line {
            kind: "total",
            key: &no_key,
            currency: &t.currency,
            totals: &t.totals,
        }))
        .collect();
    Ok(csv_response(csv(CSV_COLUMNS, &lines, csv_fields)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(billing))
}
