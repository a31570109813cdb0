//! Interval reports over REST: `GET /v1/reports/queues` and `GET /v1/reports/operators`
//! (supervisors and admins), computed by the backend from its history database, answered
//! as JSON or, with `format=csv`, as CSV with one header line.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Supervise};
use crate::error::ApiError;
use crate::rest::St;
use crate::ApiBackend;

/// Most intervals one report covers (31 days of 15-minute intervals is 2,976); the history
/// store refuses more with the same bound.
pub const REPORT_INTERVALS_MAX: u64 = 3_000;
/// Interval when the request names none.
pub const REPORT_INTERVAL_DEFAULT: ReportInterval = ReportInterval::Minutes60;

/// How long each interval of a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportInterval {
    Minutes15,
    Minutes30,
    Minutes60,
    /// 24 hours counted from `from`.
    Day,
}

impl ReportInterval {
    pub fn length_ms(self) -> u64 {
        match self {
            ReportInterval::Minutes15 => 900_000,
            ReportInterval::Minutes30 => 1_800_000,
            ReportInterval::Minutes60 => 3_600_000,
            ReportInterval::Day => 86_400_000,
        }
    }

    /// `15m`, `30m`, `60m` or `day`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "15m" => Some(ReportInterval::Minutes15),
            "30m" => Some(ReportInterval::Minutes30),
            "60m" => Some(ReportInterval::Minutes60),
            "day" => Some(ReportInterval::Day),
            _ => None,
        }
    }
}

/// What a report covers: `[from_ms, to_ms)` cut into intervals counted from `from_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    pub from_ms: u64,
    pub to_ms: u64,
    pub interval: ReportInterval,
    pub queue: Option<String>,
    pub gate: Option<String>,
    /// Service-level threshold for every queue (None: each queue's configured one).
    pub service_level_ms: Option<u64>,
}

/// One queue's interval (see lineup-store's `QueueReportRow` for each figure's meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueReportRow {
    pub queue: String,
    pub gate: Option<String>,
    /// Unix ms.
    pub interval_start: u64,
    pub offered: u64,
    pub answered: u64,
    pub answered_within_sl: u64,
    pub abandoned: u64,
    pub abandoned_before_sl: u64,
    pub abandoned_after_sl: u64,
    pub timed_out: u64,
    pub full: u64,
    pub closed: u64,
    pub other: u64,
    pub service_level_threshold_ms: u64,
    /// answered_within_sl / (offered - abandoned_before_sl).
    #[schema(minimum = 0, maximum = 1)]
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    /// Talk + wrap-up per answered call.
    pub aht_s: Option<f64>,
    pub talk_s: f64,
    pub wrap_up_s: f64,
    pub longest_wait_s: f64,
    pub callbacks_promised: u64,
    pub callbacks_made: u64,
    pub callbacks_answered: u64,
}

/// One operator's interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperatorReportRow {
    pub operator: String,
    /// Unix ms.
    pub interval_start: u64,
    pub calls_taken: u64,
    pub talk_s: f64,
    pub wrap_up_s: f64,
    pub break_s: f64,
    /// Break seconds by reason.
    pub breaks: BTreeMap<String, f64>,
    pub available_s: f64,
    pub logged_in_s: f64,
    pub logins: u64,
    /// (talk + wrap-up) / (logged in - break).
    #[schema(minimum = 0, maximum = 1)]
    pub occupancy: Option<f64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportParams {
    /// Unix ms, included.
    #[param(required = true)]
    from: Option<u64>,
    /// Unix ms, excluded.
    #[param(required = true)]
    to: Option<u64>,
    #[param(schema_with = interval_schema)]
    interval: Option<String>,
    /// One queue only.
    #[param(min_length = 1)]
    queue: Option<String>,
    /// One gate only.
    #[param(min_length = 1)]
    gate: Option<String>,
    /// The service-level threshold for every queue, instead of each queue's own.
    service_level_ms: Option<u64>,
    #[param(schema_with = format_schema)]
    format: Option<String>,
}

/// `interval=`: what [`ReportInterval::parse`] reads.
fn interval_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["15m", "30m", "60m", "day"]))
        .default(Some(serde_json::json!("60m")))
        .build()
}

/// `format=`: JSON rows or CSV.
fn format_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["json", "csv"]))
        .default(Some(serde_json::json!("json")))
        .build()
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::Invalid { field: field.into(), reason: reason.into() }
}

/// A non-empty id filter, or None.
fn id_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(id) if id.is_empty() => Err(invalid(field, "must not be empty")),
        other => Ok(other),
    }
}

impl ReportParams {
    /// The request, and whether CSV was asked for; refused before the backend is asked.
    fn request(self) -> Result<(ReportRequest, bool), ApiError> {
        let from_ms = self.from.ok_or_else(|| invalid("from", "required (Unix ms)"))?;
        let to_ms = self.to.ok_or_else(|| invalid("to", "required (Unix ms)"))?;
        if from_ms >= to_ms {
            return Err(invalid("from", "must be before `to`"));
        }
        let interval = match self.interval.as_deref() {
            None => REPORT_INTERVAL_DEFAULT,
            Some(text) => {
                ReportInterval::parse(text).ok_or_else(|| invalid("interval", "one of 15m, 30m, 60m, day"))?
            }
        };
        let intervals = (to_ms - from_ms).div_ceil(interval.length_ms());
        if intervals > REPORT_INTERVALS_MAX {
            let reason = format!("the period holds {intervals} intervals; at most {REPORT_INTERVALS_MAX}");
            return Err(invalid("to", &reason));
        }
        let csv = match self.format.as_deref() {
            None | Some("json") => false,
            Some("csv") => true,
            Some(_) => return Err(invalid("format", "json or csv")),
        };
        let queue = id_filter("queue", self.queue)?;
        let gate = id_filter("gate", self.gate)?;
        let request = ReportRequest { from_ms, to_ms, interval, queue, gate, service_level_ms: self.service_level_ms };
        Ok((request, csv))
    }
}

/// `GET /v1/reports/queues`: queue interval rows, by queue then interval.
pub(crate) async fn get_queue_report<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Supervise>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    let (request, csv) = params.request()?;
    let rows = s.backend.queue_report(request).await?;
    Ok(if csv { csv_response(crate::report_csv::queue_rows(&rows)) } else { Json(rows).into_response() })
}

/// `GET /v1/reports/operators`: operator interval rows, by operator then interval.
pub(crate) async fn get_operator_report<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Supervise>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    let (request, csv) = params.request()?;
    let rows = s.backend.operator_report(request).await?;
    Ok(if csv { csv_response(crate::report_csv::operator_rows(&rows)) } else { Json(rows).into_response() })
}

fn csv_response(text: String) -> Response {
    ([(CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
}
