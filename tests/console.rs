//! The console's files over real HTTP on an in-process server: each with its
//! content type and the strict Content-Security-Policy, the page's assets
//! where the page looks for them, and nothing else under `/console/`.
//! (The page itself runs in a browser in tests/browser.rs, feature `browser`.)
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use awc::http::StatusCode;
use common::server::{config, start};

/// GET `path`: status, content type, CSP and body.
async fn get(base: &str, path: &str) -> (StatusCode, String, String, String) {
    let mut response = awc::Client::default()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
            .unwrap_or_default()
    };
    let (content_type, csp) = (header("content-type"), header("content-security-policy"));
    let body = response.body().limit(1 << 20).await.expect("a body");
    (
        response.status(),
        content_type,
        csp,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_rt::test]
async fn the_console_and_its_assets_are_served_with_a_strict_policy() {
    let server = start(config()).await;
    let base = server.http_url();
    for (path, content_type, contains) in [
        ("/console", "text/html", "<title>effex console</title>"),
        ("/console/", "text/html", "<title>effex console</title>"),
        ("/console/console.css", "text/css", "#status"),
        ("/console/console.js", "text/javascript", "\"watch\""),
        (
            "/console/vendor/socket.io.min.js",
            "text/javascript",
            "Socket.IO v4.8.4",
        ),
        (
            "/console/vendor/socket.io-client.LICENSE",
            "text/plain",
            "MIT License",
        ),
    ] {
        let (status, got_type, csp, body) = get(&base, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(got_type.starts_with(content_type), "{path}: {got_type}");
        assert!(body.contains(contains), "{path} lacks {contains:?}");
        for rule in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(rule), "{path}: CSP {csp:?} lacks {rule}");
        }
        assert!(!csp.contains("unsafe"), "{path}: CSP {csp:?}");
    }
    // Anything else under /console/ is the REST API's JSON 404, and the
    // console takes no writes: another method is a 405 that says GET.
    let (status, _, _, body) = get(&base, "/console/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, got_type, _, _) = get(&base, "/console/nothing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(got_type.starts_with("application/json"), "{got_type}");
    let response = awc::Client::default()
        .post(format!("{base}/console"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    server.stop().await;
}
