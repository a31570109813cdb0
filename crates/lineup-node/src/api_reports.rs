//! The history store's interval reports as the API answers them: the request translated,
//! the rows copied field by field, a refused request a 422 and any other failure a 503.

use lineup_api::reports::{OperatorReportRow, QueueReportRow, ReportInterval, ReportRequest};
use lineup_api::{ApiError, BackendError, BackendErrorKind};
use lineup_store::{HistoryPipeline, StoreError};

fn query(request: ReportRequest) -> lineup_store::ReportQuery {
    let interval = match request.interval {
        ReportInterval::Minutes15 => lineup_store::ReportInterval::Minutes15,
        ReportInterval::Minutes30 => lineup_store::ReportInterval::Minutes30,
        ReportInterval::Minutes60 => lineup_store::ReportInterval::Minutes60,
        ReportInterval::Day => lineup_store::ReportInterval::Day,
    };
    lineup_store::ReportQuery {
        from_ms: request.from_ms,
        to_ms: request.to_ms,
        interval,
        queue: request.queue,
        gate: request.gate,
        service_level_ms: request.service_level_ms,
        now_ms: lineup_util::now_ms(),
    }
}

fn api_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadReport { reason } => ApiError::Invalid { field: "from".into(), reason },
        other => ApiError::Backend(BackendError {
            kind: BackendErrorKind::Unavailable,
            detail: format!("the history database cannot be read: {}", crate::api_backend::with_causes(&other)),
        }),
    }
}

pub async fn queue_report(history: &HistoryPipeline, request: ReportRequest) -> Result<Vec<QueueReportRow>, ApiError> {
    let store = history.reader().await.map_err(api_error)?;
    let rows = store.queue_report(&query(request)).await.map_err(api_error)?;
    Ok(rows.into_iter().map(queue_row).collect())
}

pub async fn operator_report(
    history: &HistoryPipeline,
    request: ReportRequest,
) -> Result<Vec<OperatorReportRow>, ApiError> {
    let store = history.reader().await.map_err(api_error)?;
    let rows = store.operator_report(&query(request)).await.map_err(api_error)?;
    Ok(rows.into_iter().map(operator_row).collect())
}

fn queue_row(r: lineup_store::QueueReportRow) -> QueueReportRow {
    QueueReportRow {
        queue: r.queue,
        gate: r.gate,
        interval_start: r.interval_start,
        offered: r.offered,
        answered: r.answered,
        answered_within_sl: r.answered_within_sl,
        abandoned: r.abandoned,
        abandoned_before_sl: r.abandoned_before_sl,
        abandoned_after_sl: r.abandoned_after_sl,
        timed_out: r.timed_out,
        full: r.full,
        closed: r.closed,
        other: r.other,
        service_level_threshold_ms: r.service_level_threshold_ms,
        service_level: r.service_level,
        asa_s: r.asa_s,
        aht_s: r.aht_s,
        talk_s: r.talk_s,
        wrap_up_s: r.wrap_up_s,
        longest_wait_s: r.longest_wait_s,
        callbacks_promised: r.callbacks_promised,
        callbacks_made: r.callbacks_made,
        callbacks_answered: r.callbacks_answered,
    }
}

fn operator_row(r: lineup_store::OperatorReportRow) -> OperatorReportRow {
    OperatorReportRow {
        operator: r.operator,
        interval_start: r.interval_start,
        calls_taken: r.calls_taken,
        talk_s: r.talk_s,
        wrap_up_s: r.wrap_up_s,
        break_s: r.break_s,
        breaks: r.breaks,
        available_s: r.available_s,
        logged_in_s: r.logged_in_s,
        logins: r.logins,
        occupancy: r.occupancy,
    }
}
