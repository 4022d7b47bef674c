//! A small HTTP/1.1 client on hyper: one keep-alive connection ([`Conn`]) for
//! the load generator, and [`Api`] for the JSON calls that set scenarios up.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

type Connection = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One keep-alive connection to the server. Its connection future is polled
/// by the same task that sends, not a task of its own: the client shares two
/// cores with the server, and a hand-off between tasks per request would add
/// client-side scheduling delay to every latency it records.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    connection: Pin<Box<Connection>>,
    host: String,
}

impl Conn {
    /// Connects (with `TCP_NODELAY`, as HTTP clients do).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        Ok(Conn {
            sender,
            connection: Box::pin(connection),
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &mut self,
        method: &Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let (status, _, body) = self.send_with(method, path, &[], body).await?;
        Ok((status, body))
    }

    /// Sends one request with extra headers and reads the whole response (a
    /// streamed one, such as an SSE stream, to its end); returns its headers too.
    pub async fn send_with(
        &mut self,
        method: &Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        for (name, value) in headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let Conn {
            sender, connection, ..
        } = self;
        let exchange = async {
            sender.ready().await?;
            let (parts, body) = sender.send_request(request).await?.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok((parts.status.as_u16(), parts.headers, body))
        };
        tokio::pin!(exchange);
        tokio::select! {
            biased;
            answer = &mut exchange => answer,
            // The connection can end in the same poll that reads the answer
            // (a server that closes after answering): the answer still counts.
            ended = connection.as_mut() => match (ended, exchange.await) {
                (_, Ok(answer)) => Ok(answer),
                (Err(e), Err(_)) => Err(e).context("connection"),
                (Ok(()), Err(e)) => Err(e.context("the server closed the connection")),
            },
        }
    }
}

/// JSON calls to the native API, each on a fresh connection (setup traffic,
/// not measured).
#[derive(Clone, Copy)]
pub struct Api {
    pub addr: SocketAddr,
}

/// The longest any setup call may take (rag warmup builds an index).
const SETUP_TIMEOUT: Duration = Duration::from_secs(1800);

impl Api {
    /// Any request; returns the status and the JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let call = async {
            let mut conn = Conn::open(self.addr).await?;
            conn.send(&method, path, body).await
        };
        let (status, bytes) = tokio::time::timeout(SETUP_TIMEOUT, call)
            .await
            .with_context(|| format!("{method} {path} did not answer"))??;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes).into_owned() }));
        Ok((status, value))
    }

    /// `GET path`, requiring success; returns the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        check(status, &body, path)?;
        Ok(body)
    }

    /// `POST path` with a JSON body, requiring `code: 0`; returns the whole envelope.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, reply) = self.request(Method::POST, path, Some(&body)).await?;
        check(status, &reply, path)?;
        Ok(reply)
    }

    /// `POST /execute`, requiring success; returns the envelope.
    pub async fn execute(
        &self,
        worker: &str,
        action: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        self.post(
            "/execute",
            json!({"worker_id": worker, "action": action, "params": params}),
        )
        .await
    }

    /// `POST /session/create` for `worker`.
    pub async fn create_session(
        &self,
        worker: &str,
        resource: &str,
        config: Value,
    ) -> anyhow::Result<Value> {
        self.post(
            "/session/create",
            json!({"worker_id": worker, "resource_type": resource, "config": config}),
        )
        .await
    }

    /// `POST /session/destroy` for `worker`.
    pub async fn destroy_session(&self, worker: &str, resource: &str) -> anyhow::Result<()> {
        self.post(
            "/session/destroy",
            json!({"worker_id": worker, "resource_type": resource}),
        )
        .await
        .map(drop)
    }

    /// `POST /warmup` for the named backends.
    pub async fn warmup(&self, backends: &[&str]) -> anyhow::Result<Value> {
        self.post("/warmup", json!({ "backends": backends })).await
    }
}

fn check(status: u16, body: &Value, path: &str) -> anyhow::Result<()> {
    let code = body.get("code").and_then(Value::as_i64).unwrap_or(0);
    if status != 200 || code != 0 {
        bail!("{path} answered HTTP {status}: {body}");
    }
    Ok(())
}

/// An `/execute` envelope that succeeded (`code: 0`).
pub fn envelope_ok(body: &[u8]) -> Result<(), String> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| format!("a body that is not JSON ({e})"))?;
    match envelope.get("code").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        _ => Err(format!("an envelope without code 0: {envelope}")),
    }
}
