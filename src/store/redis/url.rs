//! [`redact_url`]: a Redis URL as it may be shown — in logs, in `Debug`, in
//! error messages that reach REST clients, and by `--print-config` — with
//! its password replaced.

/// What stands in for a password.
pub const REDACTED: &str = "<redacted>";

/// A Redis URL with its password (if any) replaced by `<redacted>`
/// (`redis://user:pw@host/0` → `redis://user:<redacted>@host/0`; a lone
/// userinfo, `redis://pw@host`, is Redis's password too).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        None => "",
    };
    format!("{}{user}:{REDACTED}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://user:<redacted>@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://:pw@host/0"),
            "redis://:<redacted>@host/0"
        );
        assert_eq!(
            redact_url("redis://pw@host/0"),
            "redis://:<redacted>@host/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
