//! Browsers on other origins (CORS) through real HTTP on an in-process
//! server: preflights answered, `Access-Control-Allow-Origin` on answers,
//! and with a configured list, other origins left without CORS headers and
//! refused the push socket (403) while clients that send no `Origin` pass.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use awc::http::{Method, StatusCode};
use common::server::{config, start};
use effex::server::{Server, ServerConfig, ServerConfigError, ServerError};

const APP: &str = "https://app.example.com";
const OTHER: &str = "https://other.example.com";

/// A preflight for `PUT` with `Authorization` and `Content-Type` from `origin`.
async fn preflight(url: &str, origin: &str) -> awc::ClientResponse<impl futures_util::Stream> {
    awc::Client::default()
        .request(Method::OPTIONS, url)
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "PUT"))
        .insert_header((
            "Access-Control-Request-Headers",
            "authorization,content-type",
        ))
        .send()
        .await
        .expect("preflight")
}

fn header(response: &awc::ClientResponse<impl futures_util::Stream>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header").to_owned())
}

/// The status of a WebSocket upgrade of the push endpoint, with `origin`.
async fn upgrade_status(ws_url: &str, origin: Option<&str>) -> u16 {
    let mut request = awc::Client::default().ws(ws_url);
    if let Some(origin) = origin {
        request = request.origin(origin);
    }
    match request.connect().await {
        Ok((response, _)) => response.status().as_u16(),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        Err(e) => panic!("upgrade of {ws_url} failed: {e}"),
    }
}

#[actix_rt::test]
async fn by_default_any_origin_may_call_the_rest_api() {
    let server = start(config()).await;
    let item = format!("{}/items/some-item", server.http_url());
    let answer = preflight(&item, APP).await;
    assert!(answer.status().is_success(), "{:?}", answer.status());
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let methods = header(&answer, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT"), "{methods}");
    let headers = header(&answer, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    // The answer itself (here a 401 for the missing key) is readable too.
    let answer = awc::Client::default()
        .get(&item)
        .insert_header(("Origin", OTHER))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(upgrade_status(&server.ws_url(), Some(OTHER)).await, 101);
    server.stop().await;
}

#[actix_rt::test]
async fn a_list_of_origins_admits_only_those_pages() {
    let server = start(ServerConfig {
        cors_origins: vec![APP.to_owned()],
        ..config()
    })
    .await;
    let ping = format!("{}/ping", server.http_url());
    let answer = preflight(&ping, APP).await;
    assert!(answer.status().is_success(), "{:?}", answer.status());
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let answer = awc::Client::default()
        .get(&ping)
        .insert_header(("Origin", OTHER))
        .send()
        .await
        .expect("GET");
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    // The push socket: the listed origin and clients without Origin upgrade,
    // another page's origin is refused.
    let ws = server.ws_url();
    assert_eq!(upgrade_status(&ws, Some(APP)).await, 101);
    assert_eq!(upgrade_status(&ws, None).await, 101);
    assert_eq!(upgrade_status(&ws, Some(OTHER)).await, 403);
    server.stop().await;
}

#[actix_rt::test]
async fn an_origin_with_a_path_is_a_config_error() {
    let error = Server::start(ServerConfig {
        cors_origins: vec![format!("{APP}/")],
        ..config()
    })
    .await
    .unwrap_err();
    match error {
        ServerError::Config(ServerConfigError::CorsOrigin(why)) => {
            assert!(why.contains("no trailing slash"), "{why}")
        }
        other => panic!("expected a cors_origins error, got {other}"),
    }
}

/// Sends preflights from `origin` until one is refused; returns it.
async fn preflight_until_refused(
    url: &str,
    origin: &str,
) -> awc::ClientResponse<impl futures_util::Stream> {
    // The burst below is 3 at 1/s: a handful of tries must meet the limit.
    for _ in 0..20 {
        let answer = preflight(url, origin).await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            return answer;
        }
        assert!(answer.status().is_success(), "{:?}", answer.status());
    }
    panic!("20 preflights at a rate of 1/s with a burst of 3 were all answered");
}

#[actix_rt::test]
async fn preflights_count_against_the_address_rate_and_refusals_are_readable() {
    for (cors_origins, expected) in [(vec![], "*"), (vec![APP.to_owned()], APP)] {
        let server = start(ServerConfig {
            requests_per_second_per_address: 1,
            request_burst_per_address: 3,
            cors_origins,
            ..config()
        })
        .await;
        let item = format!("{}/items/some-item", server.http_url());
        // A flood of preflights alone meets the per-address rate.
        let refused = preflight_until_refused(&item, APP).await;
        // The page may read the refusal and when to try again.
        assert_eq!(
            header(&refused, "access-control-allow-origin").as_deref(),
            Some(expected)
        );
        let exposed = header(&refused, "access-control-expose-headers").unwrap_or_default();
        assert!(exposed.contains("retry-after"), "{exposed}");
        assert!(header(&refused, "retry-after").is_some());
        // Another origin's page gets the 429 without CORS headers when a list is set.
        let other = awc::Client::default()
            .get(&item)
            .insert_header(("Origin", OTHER))
            .send()
            .await
            .expect("GET");
        assert_eq!(other.status(), StatusCode::TOO_MANY_REQUESTS);
        let other_allowed = header(&other, "access-control-allow-origin");
        if expected == "*" {
            assert_eq!(other_allowed.as_deref(), Some("*"));
        } else {
            assert_eq!(other_allowed, None);
        }
        server.stop().await;
    }
}
