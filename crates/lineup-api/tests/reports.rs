//! The report routes over real HTTP, before any backend is asked: supervisors and admins
//! only, every bad parameter refused with the field it names, and a backend with no
//! history database answers 503 (the figures themselves are lineup-store's tests).

mod common;

use common::*;

const PERIOD: &str = "from=1796112000000&to=1796119200000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_for_supervisors_and_refuse_bad_parameters() {
    let rig = Rig::start().await;
    for route in ["/v1/reports/queues", "/v1/reports/operators"] {
        let (status, body) = rig.call("get", &format!("{route}?{PERIOD}"), Some(VIEWER), None).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");

        let refused = [
            ("", "from"),
            ("from=5", "to"),
            ("from=5&to=5", "from"),
            ("from=5&to=1", "from"),
            (&format!("{PERIOD}&interval=2h"), "interval"),
            (&format!("{PERIOD}&format=xml"), "format"),
            (&format!("{PERIOD}&queue="), "queue"),
            (&format!("{PERIOD}&gate="), "gate"),
            ("from=0&to=31536000000&interval=15m", "to"),
        ];
        for (query, field) in refused {
            let (status, body) = rig.call("get", &format!("{route}?{query}"), Some(SUPERVISOR), None).await;
            assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{route}?{query}: {body}");
        }

        // The in-process backend keeps no history.
        let query = format!("{route}?{PERIOD}&interval=15m&queue=sales&gate=web&service_level_ms=30000&format=csv");
        let (status, body) = rig.call("get", &query, Some(ADMIN), None).await;
        assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
    }
    rig.stop().await;
}
