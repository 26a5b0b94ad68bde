//! Webhook watches over REST (`POST /watches`, `DELETE /watches/{watchable}`,
//! protocol.md §3), as a client makes them.

use serde_json::Value;

use super::wire::http_client;

/// `POST /watches` on the server at `http_url` with `key` (bearer) and
/// `spec`: the status and the JSON body.
pub async fn post(http_url: &str, key: &str, spec: &Value) -> (u16, Value) {
    let mut response = http_client(None)
        .post(format!("{http_url}/watches"))
        .bearer_auth(key)
        .send_json(spec)
        .await
        .expect("POST /watches");
    let body = response.json().await.expect("a JSON body");
    (response.status().as_u16(), body)
}

/// `POST /watches` that must make (or find) the watch: its watchable.
pub async fn create(http_url: &str, key: &str, spec: &Value) -> String {
    let (status, body) = post(http_url, key, spec).await;
    assert_eq!(status, 201, "POST /watches {spec}: {body}");
    body["watchable"].as_str().expect("a watchable").to_owned()
}

/// `DELETE /watches/{watchable}` with `key`: the status and the JSON body
/// (`Null` when there is none).
pub async fn delete(http_url: &str, key: &str, watchable: &str) -> (u16, Value) {
    let mut response = http_client(None)
        .delete(format!("{http_url}/watches/{watchable}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("DELETE /watches");
    let body = response.json().await.unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}
