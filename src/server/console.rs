//! The live console: `GET /console` serves a page where a person pastes a
//! reader key and item ids or aliases and watches their pushes arrive (a
//! table and a pushes-per-second chart) beside the server's `/metrics`
//! figures. It must not hold state or speak Socket.IO itself: the page is a
//! plain push client of the ordinary pass/watch/ack conversation
//! (protocol.md §2), in the browser.
//!
//! - Every file is embedded in the binary at build time from the crate's
//!   `console/` directory (HTML, CSS, JS, and the socket.io-client browser
//!   bundle vendored with its license, see `console/vendor/README.md`): no
//!   CDN, nothing read from disk at run time.
//! - `GET /console` and `GET /console/` answer the page; its assets live
//!   under `/console/`. Other methods and unknown files get the REST API's
//!   JSON 404.
//! - Every answer carries a strict `Content-Security-Policy`: scripts,
//!   styles and connections from the server's own origin only, no inline
//!   script or style, no framing. The page's keys stay in the page (sent
//!   in `Authorization` to `/metrics` and inside the socket's `watch` events
//!   only).

use actix_web::http::header::{self, CacheDirective, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};

/// The policy of every console answer (see the module docs). `'self'`
/// covers the page's own `ws:`/`wss:` origin for the push socket.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: where it is served and as what.
struct Asset {
    /// The path it is served at.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes, from `console/` at build time.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";

/// The page, at both of its paths.
const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// Every file the console serves.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/console",
        content_type: HTML,
        body: INDEX,
    },
    Asset {
        path: "/console/",
        content_type: HTML,
        body: INDEX,
    },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/console.css"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/console.js"),
    },
    Asset {
        path: "/console/vendor/socket.io.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/vendor/socket.io.min.js"),
    },
    Asset {
        path: "/console/vendor/socket.io-client.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../console/vendor/socket.io-client.LICENSE"),
    },
];

/// Registers `GET` for every console file (other methods fall through to
/// the REST API's 404).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    for asset in ASSETS {
        // GET only; any other method is the REST API's JSON 405 with `Allow`.
        cfg.service(crate::server::http::resource(
            asset.path,
            vec![(Method::GET, web::get().to(move || serve(asset)))],
        ));
    }
}

/// The answer for one embedded file.
async fn serve(asset: &'static Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The files change with the binary: a browser asks again each time
        // rather than mixing an old page with a new server.
        .insert_header(header::CacheControl(vec![CacheDirective::NoCache]))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files_and_runs_no_inline_script() {
        let page = std::str::from_utf8(INDEX).expect("index.html is UTF-8");
        for src in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let target = src.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|a| a.path == target),
                "index.html refers to {target:?}, which the console does not serve"
            );
        }
        assert!(
            !page.contains("<script>"),
            "an inline script: the CSP blocks it"
        );
        assert!(
            !page.contains("style=\""),
            "an inline style: the CSP blocks it"
        );
    }
}
