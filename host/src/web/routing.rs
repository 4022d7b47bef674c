//! The headers a balancer and its clients share. `X-Worker-ID` is the key a
//! balancer hashes on to pin a worker to one host (`deploy/nginx/`); a body's
//! `worker_id` may be left out when the header is sent, and the two must agree
//! when both are. `X-Session-ID` names the session a call expects, so a call
//! that reaches a host without it is refused instead of running somewhere new.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::core::error::{CoreError, CoreResult};
use crate::core::ident::Id;

/// The routing key (the AgentFlow Python SDK sends it on every request).
pub const WORKER_HEADER: &str = "x-worker-id";
/// The session a call expects.
pub const SESSION_HEADER: &str = "x-session-id";

/// A request's routing headers, as sent (checked when a handler reconciles
/// them with its body).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    worker: Option<HeaderValue>,
    session: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Routing {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl Routing {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            worker: headers.get(WORKER_HEADER).cloned(),
            session: headers.get(SESSION_HEADER).cloned(),
        }
    }

    /// The worker a request is for: the body's `worker_id`, the header's, or
    /// either when both are sent and agree.
    pub fn worker(&self, body: Option<&str>) -> CoreResult<String> {
        pick("worker_id", "X-Worker-ID", body, self.worker.as_ref())?.ok_or_else(|| {
            CoreError::InvalidParams(
                "Missing required field 'worker_id' (or the X-Worker-ID header)".into(),
            )
        })
    }

    /// The session a call expects, if the body or the header names one.
    pub fn session(&self, body: Option<&str>) -> CoreResult<Option<String>> {
        pick("session_id", "X-Session-ID", body, self.session.as_ref())
    }

    /// [`Self::worker`] for surfaces whose worker ids follow [`Id`]'s rule.
    pub fn worker_id(&self, body: Option<Id>) -> CoreResult<Id> {
        let worker = self.worker(body.as_deref())?;
        match body {
            Some(b) => Ok(b),
            None => Id::parse("X-Worker-ID", &worker),
        }
    }

    /// [`Self::session`] for surfaces whose session ids follow [`Id`]'s rule.
    pub fn session_id(&self, body: Option<Id>) -> CoreResult<Option<Id>> {
        match (self.session(body.as_deref())?, body) {
            (_, Some(b)) => Ok(Some(b)),
            (Some(h), None) => Id::parse("X-Session-ID", &h).map(Some),
            (None, None) => Ok(None),
        }
    }
}

fn pick(
    field: &str,
    header_name: &str,
    body: Option<&str>,
    header: Option<&HeaderValue>,
) -> CoreResult<Option<String>> {
    let header = match header {
        None => None,
        Some(v) => Some(v.to_str().map(str::trim).map_err(|_| {
            CoreError::InvalidParams(format!("Header '{header_name}' must be visible ASCII text"))
        })?),
    };
    match (body, header) {
        (Some(b), Some(h)) if b != h => Err(CoreError::InvalidParams(format!(
            "Parameter '{field}' (\"{b}\") and header '{header_name}' (\"{h}\") disagree: \
             send one, or the same value in both"
        ))),
        (Some(b), _) => Ok(Some(b.to_string())),
        (None, Some(h)) if !h.is_empty() => Ok(Some(h.to_string())),
        (None, _) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(worker: Option<&str>, session: Option<&str>) -> Routing {
        let mut h = HeaderMap::new();
        if let Some(w) = worker {
            h.insert(WORKER_HEADER, HeaderValue::from_str(w).unwrap());
        }
        if let Some(s) = session {
            h.insert(SESSION_HEADER, HeaderValue::from_str(s).unwrap());
        }
        Routing::from_headers(&h)
    }

    #[test]
    fn the_header_or_the_body_names_the_worker() {
        assert_eq!(routing(Some("w1"), None).worker(None).unwrap(), "w1");
        assert_eq!(routing(None, None).worker(Some("w2")).unwrap(), "w2");
        assert_eq!(routing(Some("w3"), None).worker(Some("w3")).unwrap(), "w3");
        let e = routing(None, None).worker(None).unwrap_err().to_string();
        assert!(
            e.contains("'worker_id'") && e.contains("X-Worker-ID"),
            "{e}"
        );
    }

    #[test]
    fn a_disagreement_names_both() {
        let e = routing(Some("a"), None).worker(Some("b")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CoreError::InvalidParams(_)));
        assert!(text.contains("\"b\"") && text.contains("\"a\""), "{text}");
        assert!(
            text.contains("'worker_id'") && text.contains("'X-Worker-ID'"),
            "{text}"
        );
        let e = routing(None, Some("s1")).session(Some("s2")).unwrap_err();
        assert!(e.to_string().contains("'X-Session-ID'"), "{e}");
    }

    #[test]
    fn a_header_id_is_checked_as_the_header() {
        let e = routing(Some("a b"), None).worker_id(None).unwrap_err();
        assert!(e.to_string().contains("'X-Worker-ID'"), "{e}");
        let w = routing(Some("w1"), None).worker_id(None).unwrap();
        assert_eq!(w.as_str(), "w1");
    }

    #[test]
    fn a_session_is_named_by_either() {
        assert_eq!(routing(None, None).session(None).unwrap(), None);
        assert_eq!(
            routing(None, Some("s1")).session(None).unwrap().as_deref(),
            Some("s1")
        );
        assert_eq!(
            routing(None, None).session(Some("s2")).unwrap().as_deref(),
            Some("s2")
        );
    }
}
