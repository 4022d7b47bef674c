//! `GET /trajectory/{session_id}/view`: a page that shows a trajectory to a
//! person — steps as a timeline, screenshots with a slider. One file
//! (`viewer.html`): inline CSS and JS, nothing fetched from elsewhere, so
//! it works on a machine offline.
//!
//! The page is the same for every trajectory and holds none of it, so it
//! is served without a token (`web/auth.rs`); its script reads the log,
//! images and video from the endpoints next to it with
//! `Authorization: Bearer`, taking the token from the URL's fragment
//! (`…/view#token=…`), which a browser never sends to a server, nor puts in
//! a `Referer`. Its Content-Security-Policy allows only its own script and
//! style (by hash) and requests to this server.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const PAGE: &str = include_str!("viewer.html");

/// The text between `open` and `close` in the page.
fn between<'a>(open: &str, close: &str) -> &'a str {
    PAGE.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(inner, _)| inner)
}

fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn policy() -> &'static HeaderValue {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    POLICY.get_or_init(|| {
        let text = format!(
            "default-src 'none'; script-src {}; style-src {}; img-src blob:; media-src blob:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            csp_hash(between("<script>", "</script>")),
            csp_hash(between("<style>", "</style>")),
        );
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    })
}

pub async fn view() -> Response {
    let mut res = Html(PAGE).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, policy().clone());
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        assert!(!between("<script>", "</script>").is_empty());
        assert!(!between("<style>", "</style>").is_empty());
        // One script and one style, both inline: the policy's hashes cover all.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        for outside in ["http://", "https://", "//cdn", "src=\"", "@import"] {
            assert!(!PAGE.contains(outside), "the page refers to {outside}");
        }
    }
}
