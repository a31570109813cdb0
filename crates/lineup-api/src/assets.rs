//! Pages served by every node from files embedded in the binary (`assets/`): the supervisor
//! dashboard at `/` (`index.html`, `dashboard.js`) and the caller widget at `/widget`
//! (`widget.html`), an operator's own panel at `/agent` (`agent.html`), sharing `lineup.js` (token, REST, reconnecting WebSocket) and
//! `lineup.css`. Plain modern JS modules: no build step; browser tests in `tests/browser/`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// One embedded file and the path it is served at.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../assets/index.html") },
    Asset { path: "/widget", content_type: "text/html; charset=utf-8", body: include_bytes!("../assets/widget.html") },
    Asset { path: "/agent", content_type: "text/html; charset=utf-8", body: include_bytes!("../assets/agent.html") },
    Asset {
        path: "/assets/lineup.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/lineup.js"),
    },
    Asset {
        path: "/assets/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dashboard.js"),
    },
    Asset {
        path: "/assets/lineup.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/lineup.css"),
    },
];

/// Routes for every asset (no auth: the pages hold no data; they ask for a token and call /v1).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        let (content_type, body) = (asset.content_type, asset.body);
        router = router.route(
            asset.path,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, content_type),
                        (header::CACHE_CONTROL, "no-cache"),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    body,
                )
                    .into_response()
            }),
        );
    }
    router
}
