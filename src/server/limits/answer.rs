//! [`Limited`]: how a limit answers (protocol.md §2.2 and §3): 429 with
//! `Retry-After` on HTTP, `{ok:false, code:429, error, retryAfter}` to a
//! `pass`, CONNECT_ERROR with `data.retryAfter` to a pass inside CONNECT.
//! It must not decide what is limited.

use std::time::Duration;

use crate::protocol::messages::{ConnectRefused, Failure};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// The message of a refused pass (protocol.md §2.2).
const TOO_MANY_ATTEMPTS: &str = "too many attempts";

/// A request refused by a limit: what to tell the client and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limited {
    /// How long until the limit lets the client through again.
    pub(crate) retry_after: Duration,
    /// The human message for HTTP answers (what was limited, what to do).
    pub(crate) message: String,
}

impl Limited {
    /// The wait in whole milliseconds, rounded up (at least 1).
    pub(crate) fn retry_after_ms(&self) -> u64 {
        let ms = self.retry_after.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    }

    /// The wait in whole seconds, rounded up (at least 1), as `Retry-After`
    /// counts it.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms().div_ceil(1000)
    }

    /// 429 `{"ok":false,"code":429,"error":…}` with `Retry-After`.
    pub(crate) fn response(&self) -> HttpResponse {
        let mut response =
            HttpResponse::build(StatusCode::TOO_MANY_REQUESTS).json(self.key_refusal());
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response
    }

    /// The reply to a `pass` event.
    pub(crate) fn pass_reply(&self) -> Failure {
        Failure::limited(TOO_MANY_ATTEMPTS, self.retry_after_ms())
    }

    /// The reply to a `watch` from a locked-out address: 429 with the
    /// message and `retryAfter`.
    pub(crate) fn key_refusal(&self) -> Failure {
        Failure::limited(&self.message, self.retry_after_ms())
    }

    /// The CONNECT_ERROR payload for a pass inside CONNECT.
    pub(crate) fn connect_refusal(&self) -> ConnectRefused {
        ConnectRefused::limited(TOO_MANY_ATTEMPTS, self.retry_after_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up() {
        let limited = Limited {
            retry_after: Duration::from_micros(1_000_001),
            message: "slow down".into(),
        };
        assert_eq!(limited.retry_after_ms(), 1001);
        assert_eq!(limited.retry_after_secs(), 2);
        let zero = Limited {
            retry_after: Duration::ZERO,
            message: String::new(),
        };
        assert_eq!(zero.retry_after_ms(), 1);
        assert_eq!(zero.retry_after_secs(), 1);
    }

    #[test]
    fn pass_answers_have_the_protocol_shape() {
        let limited = Limited {
            retry_after: Duration::from_millis(2500),
            message: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&limited.pass_reply()).unwrap(),
            r#"{"ok":false,"code":429,"error":"too many attempts","retryAfter":2500}"#
        );
        assert_eq!(
            serde_json::to_string(&limited.connect_refusal()).unwrap(),
            r#"{"message":"too many attempts","data":{"code":429,"retryAfter":2500}}"#
        );
        let response = limited.response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "3");
    }
}
