//! The MCP surface (`/mcp`, Streamable HTTP) driven by a real MCP client
//! (`rmcp`), against the real binary and real plugin libraries.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentflow_e2e::{
    eventually, plugin_library, png_size, processes_matching, Server, ServerBuilder,
};
use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientConfig, ClientJsonRpcMessage,
    ClientRequest, ProgressNotificationParam, ProgressToken, ProtocolVersion, RequestMetaObject,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use sse_stream::Sse;

const TOKEN: &str = "mcp-e2e-token-value";
/// The longest any single MCP exchange may take before the test fails.
const CALL_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Client plumbing
// ---------------------------------------------------------------------------

/// A session DELETE the transport sent: the session id and its outcome.
type Delete = (String, Result<(), String>);

/// The reqwest client rmcp uses, recording the `Mcp-Session-Id` the server
/// assigned and every session DELETE the transport sent (with its outcome).
#[derive(Clone, Default)]
struct Recorder {
    inner: reqwest::Client,
    session_id: Arc<Mutex<Option<String>>>,
    deletes: Arc<Mutex<Vec<Delete>>>,
}

impl Recorder {
    fn note_session(&self, id: Option<&str>) {
        if let Some(id) = id {
            *self.session_id.lock().unwrap() = Some(id.to_string());
        }
    }

    fn note_response(&self, response: &StreamableHttpPostResponse) {
        match response {
            StreamableHttpPostResponse::Json(_, id) | StreamableHttpPostResponse::Sse(_, id) => {
                self.note_session(id.as_deref())
            }
            _ => {}
        }
    }

    fn session_id(&self) -> String {
        self.session_id
            .lock()
            .unwrap()
            .clone()
            .expect("the server assigned no Mcp-Session-Id")
    }
}

impl StreamableHttpClient for Recorder {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.note_session(session_id.as_deref());
        let response = self
            .inner
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await?;
        self.note_response(&response);
        Ok(response)
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.note_session(session_id.as_deref());
        let response = self
            .inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await?;
        self.note_response(&response);
        Ok(response)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let result = self
            .inner
            .delete_session(uri, session_id.clone(), auth_header, custom_headers)
            .await;
        self.deletes.lock().unwrap().push((
            session_id.to_string(),
            result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
        result
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

/// The client's handler: speaks the `initialize` lifecycle (protocol
/// 2025-11-25, sessions with `Mcp-Session-Id`) and counts
/// `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct Handler {
    tools_changed: Arc<AtomicUsize>,
    /// `notifications/progress` messages, in order.
    progress: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default().with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let mut seen = self.progress.lock().unwrap();
        seen.push(params.message.unwrap_or_default());
    }
}

type Client = RunningService<RoleClient, Handler>;

/// A connected MCP client and what its HTTP layer saw.
struct Mcp {
    client: Client,
    http: Recorder,
    handler: Handler,
}

#[derive(Default)]
struct Connect {
    token: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Connect {
    fn token(mut self, token: &'static str) -> Self {
        self.token = Some(token);
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    async fn to(self, s: &Server) -> Result<Mcp, rmcp::service::ClientInitializeError> {
        let http = Recorder::default();
        let handler = Handler::default();
        let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", s.base));
        if let Some(t) = self.token {
            config = config.auth_header(t);
        }
        if !self.headers.is_empty() {
            config = config.custom_headers(
                self.headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            HeaderName::from_static(k),
                            HeaderValue::from_str(v).unwrap(),
                        )
                    })
                    .collect(),
            );
        }
        let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
        let client = within(handler.clone().serve(transport)).await?;
        Ok(Mcp {
            client,
            http,
            handler,
        })
    }
}

async fn connect(s: &Server) -> Mcp {
    match Connect::default().to(s).await {
        Ok(m) => m,
        Err(e) => panic!("MCP initialize failed: {e}\nserver log:\n{}", s.log()),
    }
}

/// Fails the test if `f` takes longer than [`CALL_LIMIT`].
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(CALL_LIMIT, f)
        .await
        .expect("an MCP exchange took longer than a minute")
}

/// Blocking work (the harness's HTTP helpers, `eventually`) off the runtime's
/// worker so the MCP client keeps running meanwhile.
fn native<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn params(name: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name.to_string()).with_arguments(args)
}

/// `tools/call`, as JSON on the wire (`content`, `structuredContent`, `isError`).
async fn call(m: &Mcp, name: &str, args: Value) -> Value {
    let result: CallToolResult = within(m.client.call_tool(params(name, args)))
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed: {e}"));
    serde_json::to_value(result).unwrap()
}

/// The first content block's text.
fn text(result: &Value) -> &str {
    assert_eq!(result["content"][0]["type"], "text", "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

fn is_error(result: &Value) -> bool {
    result["isError"] == true
}

/// A call that must succeed, as its structured content.
async fn ok(m: &Mcp, name: &str, args: Value) -> Value {
    let r = call(m, name, args).await;
    assert!(!is_error(&r), "{name} failed: {r}");
    r
}

async fn bash(m: &Mcp, command: &str) -> Value {
    ok(m, "bash_run", json!({ "command": command })).await["structuredContent"].clone()
}

async fn tools(m: &Mcp) -> Vec<Value> {
    within(m.client.list_all_tools())
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect()
}

fn names(tools: &[Value]) -> Vec<String> {
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// A server with the bash plugin and a private workspace root; the returned
/// directory outlives the server (fields drop in order).
struct BashServer {
    s: Server,
    _root: tempfile::TempDir,
}

fn with_bash(b: ServerBuilder) -> (ServerBuilder, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let ws: PathBuf = root.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    // The sandbox's user must pass through the workspace root and its parent.
    for p in [root.path(), ws.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let b = b.plugin("bash").toml(&format!(
        "[plugins.bash.config]\nworkspace_root = \"{}\"",
        ws.display()
    ));
    (b, root)
}

fn bash_server(b: ServerBuilder) -> BashServer {
    let (b, root) = with_bash(b);
    BashServer {
        s: b.start(),
        _root: root,
    }
}

fn sessions_of(s: &Server, worker: &str) -> Vec<Value> {
    let (code, body) = s.post("/session/list", json!({ "worker_id": worker }));
    assert_eq!(code, 200, "{body}");
    body["data"]["sessions"].as_array().unwrap().clone()
}

fn marker(tag: &str) -> String {
    format!("agentflow-mcp-e2e-{}-{tag}", std::process::id())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_names_the_server_and_announces_changing_tools() {
    let s = Server::builder().plugin("fixture").start();
    // A client as rmcp configures it by default (it offers 2026-07-28, which
    // has no `initialize`): the server negotiates the session lifecycle.
    let http = Recorder::default();
    let transport = StreamableHttpClientTransport::with_client(
        http.clone(),
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", s.base)),
    );
    let client = match within(ClientConfig::default().serve(transport)).await {
        Ok(c) => c,
        Err(e) => panic!("MCP initialize failed: {e}\nserver log:\n{}", s.log()),
    };
    let info = client.peer_info().expect("no initialize result");
    let server = info.server_info.as_ref().expect("serverInfo missing");
    assert!(!server.name.is_empty(), "{info:?}");
    assert!(!server.version.is_empty(), "{info:?}");
    assert_eq!(
        info.capabilities
            .tools
            .as_ref()
            .and_then(|t| t.list_changed),
        Some(true),
        "{info:?}"
    );
    assert_eq!(
        info.protocol_version,
        ProtocolVersion::V_2025_11_25,
        "{info:?}"
    );
    // A session was established: later requests carry its id, and it works.
    assert!(!http.session_id().is_empty());
    let r = within(client.call_tool(params("fixture_echo", json!({"text": "hi"}))))
        .await
        .expect("tools/call");
    assert_eq!(
        r.structured_content.as_ref().unwrap()["text"],
        "hi",
        "{r:?}"
    );
    within(client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_serves_every_visible_tool_with_schema_and_hints() {
    let index = tempfile::tempdir().unwrap();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/rag/corpus/default.jsonl");
    let bs = bash_server(
        Server::builder()
            .plugin("vm")
            .plugin("fixture")
            .plugin("rag")
            .toml(&format!(
                "[plugins.rag.config]\nindex_path = \"{}\"\ncorpus_path = \"{}\"",
                index.path().join("index").display(),
                corpus.display()
            )),
    );
    let s = &bs.s;
    let m = connect(s).await;
    let listed = tools(&m).await;
    let listed_names = names(&listed);

    let valid = |n: &str| {
        (1..=64).contains(&n.len())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    for n in &listed_names {
        assert!(valid(n), "invalid MCP tool name {n:?}");
    }
    let mut sorted = listed_names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        listed_names.len(),
        "duplicates: {listed_names:?}"
    );

    // Exactly the native non-hidden tools, `plugin:tool` named `plugin_tool`.
    let (code, listing) = native(|| s.get("/tools?include_hidden=true"));
    assert_eq!(code, 200, "{listing}");
    let native_tools = listing["data"]["tools"].as_array().unwrap().clone();
    let mut expected: Vec<String> = native_tools
        .iter()
        .filter(|t| t["hidden"] != true)
        .map(|t| t["name"].as_str().unwrap().replacen(':', "_", 1))
        .collect();
    expected.sort();
    let hidden: Vec<String> = native_tools
        .iter()
        .filter(|t| t["hidden"] == true)
        .map(|t| t["name"].as_str().unwrap().replacen(':', "_", 1))
        .collect();
    assert!(
        hidden.contains(&"fixture_secret".to_string()),
        "the fixture's hidden tool is not listed natively: {hidden:?}"
    );
    assert_eq!(
        sorted, expected,
        "MCP list differs from native visible tools"
    );
    for n in [
        "bash_run",
        "bash_read_file",
        "vm_screenshot",
        "fixture_echo",
    ] {
        assert!(
            listed_names.iter().any(|l| l == n),
            "{n} missing: {listed_names:?}"
        );
    }
    for h in &hidden {
        assert!(!listed_names.contains(h), "hidden tool {h} is listed");
    }

    for t in &listed {
        assert!(
            t["description"].as_str().is_some_and(|d| !d.is_empty()),
            "no description: {t}"
        );
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let tool = |n: &str| listed.iter().find(|t| t["name"] == n).unwrap().clone();
    let run = tool("bash_run");
    assert_eq!(
        run["inputSchema"]["properties"]["command"]["type"], "string",
        "{run}"
    );
    assert!(
        run["inputSchema"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("command"))),
        "{run}"
    );
    assert_eq!(run["annotations"]["destructiveHint"], true, "{run}");
    assert_ne!(run["annotations"]["readOnlyHint"], true, "{run}");
    let shot = tool("vm_screenshot");
    assert_eq!(shot["annotations"]["readOnlyHint"], true, "{shot}");
    for search in ["rag_search", "rag_batch_search"] {
        let t = tool(search);
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
    }
    assert_ne!(tool("rag_index")["annotations"]["readOnlyHint"], true);
    assert!(
        tool("fixture_echo")["inputSchema"]["properties"]
            .get("text")
            .is_some(),
        "{}",
        tool("fixture_echo")
    );
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_run_keeps_its_shell_across_calls_of_one_mcp_session() {
    let bs = bash_server(Server::builder());
    let s = &bs.s;
    let m = connect(s).await;
    bash(&m, "cd /tmp && export X=42").await;
    let r = ok(&m, "bash_run", json!({"command": "pwd; echo $X"})).await;
    let data = &r["structuredContent"];
    assert_eq!(data["stdout"], "/tmp\n42\n", "{r}");
    assert_eq!(data["return_code"], 0, "{r}");
    let t = text(&r);
    assert!(t.contains("/tmp") && t.contains("42"), "{t}");

    // The text a model reads carries stdout, stderr and the exit code; the
    // structured content is the native result.
    let r = ok(
        &m,
        "bash_run",
        json!({"command": "echo out-marker; echo err-marker >&2; (exit 93)"}),
    )
    .await;
    let t = text(&r);
    for part in ["out-marker", "err-marker", "93"] {
        assert!(t.contains(part), "{part} missing from {t:?}");
    }
    let data = &r["structuredContent"];
    assert_eq!(data["stdout"], "out-marker\n", "{r}");
    assert_eq!(data["stderr"], "err-marker\n", "{r}");
    assert_eq!(data["return_code"], 93, "{r}");
    let (code, direct) = native(|| {
        s.execute(
            "native",
            "bash:run",
            json!({"command": "echo out-marker; echo err-marker >&2; (exit 93)"}),
        )
    });
    assert_eq!(code, 200, "{direct}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(data), keys(&direct["data"]), "{data} vs {direct}");

    // Another MCP session has a shell of its own.
    let other = connect(s).await;
    assert_eq!(bash(&other, "echo ${X:-unset}").await["stdout"], "unset\n");
    within(other.client.cancel()).await.unwrap();
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_screenshot_is_a_png_image_of_the_session_screen() {
    let s = Server::builder()
        .plugin("vm")
        .toml("[plugins.vm.session]\nscreen_size = [640, 480]")
        .start();
    let m = connect(&s).await;
    let r = ok(&m, "vm_screenshot", json!({})).await;
    let image = r["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "image")
        .unwrap_or_else(|| panic!("no image content: {}", summary(&r)))
        .clone();
    assert_eq!(image["mimeType"], "image/png", "{}", summary(&r));
    assert_eq!(png_size(image["data"].as_str().unwrap()), (640, 480));
    // The desktop is the MCP session's own, kept for its next calls.
    let worker = format!("mcp-{}", m.http.session_id());
    let listed = native(|| sessions_of(&s, &worker));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["resource_type"], "vm");
    let r2 = ok(&m, "vm_screenshot", json!({})).await;
    assert!(r2["content"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "image"));
    let again = native(|| sessions_of(&s, &worker));
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["session_id"], listed[0]["session_id"]);
    within(m.client.cancel()).await.unwrap();
}

/// A result with long base64 strings shortened, for messages.
fn summary(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(blocks) = v["content"].as_array_mut() {
        for b in blocks {
            if let Some(d) = b.get_mut("data") {
                *d = json!(format!("<{} chars>", d.as_str().map_or(0, str::len)));
            }
        }
    }
    if let Some(i) = v["structuredContent"].get_mut("image") {
        *i = json!("<image>");
    }
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_failures_are_error_results_with_the_native_message() {
    let bs = bash_server(
        Server::builder()
            .plugin("fixture")
            .server("default_timeout = 1"),
    );
    let s = &bs.s;
    let m = connect(s).await;
    let cases = [
        ("bash_run", "bash:run", json!({"command": 5})),
        ("bash_run", "bash:run", json!({})),
        (
            "fixture_echo",
            "fixture:echo",
            json!({"text": "x", "count": "many"}),
        ),
        ("fixture_fail", "fixture:fail", json!({})),
        ("fixture_sleep", "fixture:sleep", json!({"seconds": 20})),
    ];
    for (mcp_name, native_name, args) in cases {
        let (code, body) = native(|| s.execute("native", native_name, args.clone()));
        assert_ne!(code, 200, "{native_name} {args} succeeded natively: {body}");
        let message = body["message"].as_str().unwrap().to_string();
        assert!(!message.is_empty());
        let r = call(&m, mcp_name, args.clone()).await;
        assert!(is_error(&r), "{mcp_name} {args}: not an error result: {r}");
        assert!(
            text(&r).contains(&message),
            "{mcp_name} {args}: {:?} does not carry the native message {message:?}",
            text(&r)
        );
    }
    // The session survives its failures.
    assert_eq!(bash(&m, "echo still here").await["stdout"], "still here\n");
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tool_is_a_protocol_error() {
    let s = Server::builder().plugin("fixture").start();
    let m = connect(&s).await;
    for name in ["nosuch_tool", "fixture_nosuch"] {
        let res = within(m.client.call_tool(params(name, json!({})))).await;
        match res {
            Err(ServiceError::McpError(e)) => {
                assert!(!e.message.is_empty(), "{name}: {e:?}");
            }
            Err(e) => panic!("{name}: not a protocol error but {e}"),
            Ok(r) => panic!(
                "{name}: a result instead of a protocol error: {}",
                serde_json::to_value(r).unwrap()
            ),
        }
    }
    // The MCP session is unharmed.
    let r = ok(&m, "fixture_echo", json!({"text": "after"})).await;
    assert_eq!(r["structuredContent"]["text"], "after", "{r}");
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_progress_token_hears_each_chunk_before_its_result() {
    let s = Server::builder().plugin("fixture").start();
    let m = connect(&s).await;
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params(
        "fixture_ticks",
        json!({"count": 4, "interval_ms": 20}),
    )));
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(rmcp::model::NumberOrString::String(
        "ticks-1".into(),
    )));
    let options = PeerRequestOptions::no_options().with_meta(meta);
    let handle = within(m.client.send_request_with_option(request, options))
        .await
        .expect("send tools/call");
    let reply = within(handle.await_response()).await.expect("a result");
    assert!(format!("{reply:?}").contains("tick 4"), "{reply:?}");
    // The server sends them before the result; the client may hand them to
    // its handler a moment later.
    let progress = m.handler.progress.clone();
    native(|| {
        eventually(Duration::from_secs(5), || {
            progress.lock().unwrap().len() >= 4
        })
    });
    let seen = m.handler.progress.lock().unwrap().clone();
    assert_eq!(seen, ["tick 1\n", "tick 2\n", "tick 3\n", "tick 4\n"]);
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_long_bash_run_stops_it_and_the_shell_survives() {
    let bs = bash_server(Server::builder());
    let s = &bs.s;
    let m = connect(s).await;
    bash(&m, "cd /tmp && export KEEP=yes").await;
    let mark = marker("cancel");
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params(
        "bash_run",
        json!({"command": format!("bash -c 'exec -a {mark} sleep 30'; echo finished")}),
    )));
    let handle = within(
        m.client
            .send_cancellable_request(request, PeerRequestOptions::no_options()),
    )
    .await
    .expect("send tools/call");
    assert!(
        native(
            || eventually(Duration::from_secs(10), || !processes_matching(&mark)
                .is_empty())
        ),
        "the command never started; log:\n{}",
        s.log()
    );
    let started = std::time::Instant::now();
    within(handle.cancel(Some("test cancels".into())))
        .await
        .expect("send notifications/cancelled");
    assert!(
        native(
            || eventually(Duration::from_secs(10), || processes_matching(&mark)
                .is_empty())
        ),
        "the cancelled command still runs: {:?}",
        processes_matching(&mark)
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    let r = ok(&m, "bash_run", json!({"command": "echo $KEEP; pwd"})).await;
    assert_eq!(r["structuredContent"]["stdout"], "yes\n/tmp\n", "{r}");
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_plugged_plugin_is_announced_and_callable() {
    let s = Server::builder().server("rescan_interval = 1").start();
    let m = connect(&s).await;
    let before = names(&tools(&m).await);
    assert!(
        !before.iter().any(|n| n.starts_with("fixture_")),
        "{before:?}"
    );
    assert_eq!(m.handler.tools_changed.load(Ordering::SeqCst), 0);

    std::fs::copy(
        plugin_library("fixture"),
        s.plugin_dir().join("libagentflow_fixture.so"),
    )
    .unwrap();
    let status = || s.get("/warmup/status").1["data"]["backends"]["fixture"].clone();
    assert!(
        native(|| eventually(Duration::from_secs(15), || status()["state"]
            == "discovered")),
        "not discovered: {}",
        status()
    );
    let (code, body) = native(|| s.post("/warmup", json!({"backends": ["fixture"]})));
    assert_eq!(code, 200, "{body}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while m.handler.tools_changed.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notifications/tools/list_changed within 15 s; log:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = names(&tools(&m).await);
    assert!(after.contains(&"fixture_echo".to_string()), "{after:?}");
    assert!(!after.contains(&"fixture_secret".to_string()), "{after:?}");
    let r = ok(&m, "fixture_echo", json!({"text": "hot"})).await;
    assert_eq!(r["structuredContent"]["text"], "hot", "{r}");
    within(m.client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_mcp_session_ends_its_sessions_and_their_processes() {
    let bs = bash_server(Server::builder().plugin("fixture"));
    let s = &bs.s;
    let m = connect(s).await;
    let mark = marker("delete");
    bash(
        &m,
        &format!("(exec -a {mark} sleep 1234) >/dev/null 2>&1 & echo started"),
    )
    .await;
    ok(&m, "fixture_echo", json!({"text": "x"})).await;
    assert!(
        native(
            || eventually(Duration::from_secs(5), || !processes_matching(&mark)
                .is_empty())
        ),
        "the background process never started"
    );
    let sid = m.http.session_id();
    let worker = format!("mcp-{sid}");
    let mut kinds: Vec<String> = native(|| sessions_of(s, &worker))
        .iter()
        .map(|x| x["resource_type"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["bash", "fixture"], "sessions of {worker}");

    let http = m.http.clone();
    within(m.client.cancel()).await.unwrap();
    let deletes = http.deletes.lock().unwrap().clone();
    assert_eq!(deletes, vec![(sid.clone(), Ok(()))], "the client's DELETE");

    assert!(
        native(
            || eventually(Duration::from_secs(10), || sessions_of(s, &worker)
                .is_empty())
        ),
        "sessions left after DELETE: {:?}",
        sessions_of(s, &worker)
    );
    assert!(
        native(
            || eventually(Duration::from_secs(10), || processes_matching(&mark)
                .is_empty())
        ),
        "a process of the ended session survived: {:?}",
        processes_matching(&mark)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_requires_the_bearer_token_when_one_is_set() {
    let s = Server::builder()
        .plugin("fixture")
        .env("AGENTFLOW_TOKEN", TOKEN)
        .start();
    let url = format!("{}/mcp", s.base);
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw-e2e", "version": "0"}
        }
    })
    .to_string();
    let raw = |auth: Option<String>| {
        let mut req = ureq::post(&url)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json, text/event-stream");
        if let Some(a) = auth {
            req = req.set("Authorization", &a);
        }
        match req.send_string(&initialize) {
            Ok(r) => (r.status(), r.header("mcp-session-id").map(str::to_string)),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.header("mcp-session-id").map(str::to_string))
            }
            Err(e) => panic!("transport error: {e}"),
        }
    };
    assert_eq!(native(|| raw(None)).0, 401);
    assert_eq!(native(|| raw(Some("Bearer wrong".into()))).0, 401);
    let (code, session) = native(|| raw(Some(format!("Bearer {TOKEN}"))));
    assert_eq!(code, 200, "log:\n{}", s.log());
    assert!(
        session.is_some_and(|id| !id.is_empty()),
        "no Mcp-Session-Id"
    );

    assert!(
        Connect::default().to(&s).await.is_err(),
        "an MCP client without the token was served"
    );
    let m = match Connect::default().token(TOKEN).to(&s).await {
        Ok(m) => m,
        Err(e) => panic!("with the token: {e}\nlog:\n{}", s.log()),
    };
    let r = ok(&m, "fixture_echo", json!({"text": "authorized"})).await;
    assert_eq!(r["structuredContent"]["text"], "authorized", "{r}");
    within(m.client.cancel()).await.unwrap();
    assert!(!s.log().contains(TOKEN), "the token leaked into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x_worker_id_header_names_the_worker_of_the_mcp_session() {
    let bs = bash_server(Server::builder());
    let s = &bs.s;
    let m = match Connect::default()
        .header("x-worker-id", "my-worker")
        .to(s)
        .await
    {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    bash(&m, "export W=mine").await;
    let listed = native(|| sessions_of(s, "my-worker"));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["resource_type"], "bash");
    let default_worker = format!("mcp-{}", m.http.session_id());
    assert!(native(|| sessions_of(s, &default_worker)).is_empty());
    // It is the same shell natively: the worker's session, not a copy.
    let (code, body) = native(|| s.execute("my-worker", "bash:run", json!({"command": "echo $W"})));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["stdout"], "mine\n", "{body}");
    within(m.client.cancel()).await.unwrap();
}

/// Stopping the server while MCP sessions are open (or just ending) leaves no
/// session disk mounted: the server's own cleanup waits for every session's.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_with_mcp_sessions_open_leaves_no_disk_mounted() {
    let bs = bash_server(Server::builder());
    let root = bs._root.path().to_string_lossy().into_owned();
    let open = connect(&bs.s).await;
    bash(&open, "echo open").await;
    let ending = connect(&bs.s).await;
    bash(&ending, "echo ending").await;
    // One session ends just as the server is told to stop.
    let _ = ending.client.cancel().await;
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(root.as_str()))
            .count()
    };
    assert!(
        mounted() > 0,
        "the sessions' disks should be mounted while they live"
    );
    let BashServer { s, _root } = bs;
    native(move || drop(s));
    assert_eq!(mounted(), 0, "disks left mounted under {root}");
    drop(open);
}
