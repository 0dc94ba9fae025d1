//! The S3 storage against a real S3-compatible server: moto's, started per test from the
//! repository's `.venv-moto` (installed by `scripts/lib.sh`'s `ensure_venv`, which
//! `scripts/test.sh` runs before the Rust tests).
//!
//! The tests play the recorder: they write entries and states into a spool with
//! [`layout`]'s functions, then check the bucket with plain HTTP requests of their own (moto
//! does not check signatures), not through the code under test.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use sshpod_audit::layout::{self, EntryState};
use sshpod_audit::s3::{S3Store, Uploader, UploaderHandle, UploaderStats, UploaderTiming};
use sshpod_audit::store::Store;
use sshpod_config::{AuditS3Config, AuditS3Metadata, Secret};
use sshpod_core::Lifecycle;

/// The part size of the tests; moto is told to accept parts this small (S3's least is 5 MiB),
/// and still refuses a smaller part that is not the last.
const PART: u64 = 64 * 1024;
const BUCKET: &str = "recordings";
/// The longest any wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(90);
/// What moto needs to route a request to S3 (it does not check the signature).
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

fn moto_server() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-moto/bin/moto_server");
    if !path.exists() {
        panic!(
            "{} is missing: install it with `source scripts/lib.sh && ensure_venv` (scripts/test.sh does)",
            path.display()
        );
    }
    path
}

/// A moto server; killed (SIGKILL) when dropped.
struct Moto {
    child: Child,
    port: u16,
    scheme: &'static str,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl Moto {
    /// A server on `port` (0: any free one).
    fn start(port: u16) -> Moto {
        Self::spawn(port, None)
    }

    /// An https server on `port` with `cert` and `key` (PEM files).
    fn start_tls(port: u16, cert: &Path, key: &Path) -> Moto {
        Self::spawn(port, Some((cert, key)))
    }

    fn spawn(port: u16, tls: Option<(&Path, &Path)>) -> Moto {
        let mut command = Command::new(moto_server());
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("S3_UPLOAD_PART_MIN_SIZE", PART.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((cert, key)) = tls {
            command.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("starting moto_server: {e}"),
        };
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (ready, listening) = mpsc::channel();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|p| Box::new(p) as _),
            child.stderr.take().map(|p| Box::new(p) as _),
        ];
        // Both pipes are read to the end, or moto would block on a full one.
        for pipe in pipes.into_iter().flatten() {
            let ready = ready.clone();
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(port) = listening_port(&line) {
                        let _ = ready.send(Some(port));
                    }
                    if let Ok(mut output) = output.lock() {
                        output.push_back(line);
                        if output.len() > 40 {
                            output.pop_front();
                        }
                    }
                }
                let _ = ready.send(None);
            });
        }
        let mut moto = Moto {
            child,
            port: 0,
            scheme: if tls.is_some() { "https" } else { "http" },
            output,
        };
        match listening.recv_timeout(DEADLINE) {
            Ok(Some(port)) => moto.port = port,
            other => panic!(
                "moto_server did not start ({other:?}); its output:\n{}",
                moto.output()
            ),
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Kills the server (its data goes with it: moto keeps everything in memory).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port of werkzeug's "Running on http://127.0.0.1:PORT".
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("Running on ").nth(1)?;
    let port = rest.rsplit(':').next()?;
    port.trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Plain HTTP to moto, independent of the code under test.
fn http() -> reqwest::Client {
    match reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
    {
        Ok(client) => client,
        Err(e) => panic!("building the HTTP client: {e}"),
    }
}

/// Creates the bucket, waiting (until the deadline) for the server to answer.
async fn create_bucket(moto: &Moto) {
    let url = format!("{}/{BUCKET}", moto.endpoint());
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        match http().put(&url).header("authorization", AUTH).send().await {
            Ok(response) if response.status().is_success() => return,
            other if tokio::time::Instant::now() > give_up => panic!(
                "creating the bucket: {other:?}; moto's output:\n{}",
                moto.output()
            ),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// GET of `path_and_query` under the bucket: status, headers, body.
async fn get(moto: &Moto, path_and_query: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let url = format!("{}/{BUCKET}/{path_and_query}", moto.endpoint());
    let response = match http().get(&url).header("authorization", AUTH).send().await {
        Ok(response) => response,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(body) => (status, headers, body.to_vec()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// The object `key`'s bytes and headers, which must exist.
async fn object(moto: &Moto, key: &str) -> (HeaderMap, Vec<u8>) {
    let (status, headers, body) = get(moto, key).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {key}: {}",
        String::from_utf8_lossy(&body)
    );
    (headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("<none>")
}

/// Bytes that differ at every offset, so a part sent at the wrong place shows.
fn noise(seed: u64, len: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The spool, written as the recorder writes it.
struct Spool {
    dir: tempfile::TempDir,
}

impl Spool {
    fn new() -> Spool {
        match tempfile::tempdir() {
            Ok(dir) => Spool { dir },
            Err(e) => panic!("creating the spool: {e}"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self, connection: &str, complete: bool) {
        let state = EntryState {
            connection: connection.to_owned(),
            started: 1_796_616_000,
            complete,
            authenticated: true,
            username: Some("alice".to_owned()),
            ip: "192.0.2.7:50022".to_owned(),
            country: "XX".to_owned(),
        };
        if let Err(e) = layout::write_state(self.root(), &state) {
            panic!("writing the state of {connection}: {e}");
        }
    }

    /// Appends `bytes` to `file` of the directory entry `connection`.
    fn append(&self, connection: &str, file: &str, bytes: &[u8]) {
        let dir = layout::entry_path(self.root(), connection);
        let written = fs::create_dir_all(&dir).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(file))?
                .write_all(bytes)
        });
        if let Err(e) = written {
            panic!("writing {connection}/{file}: {e}");
        }
    }

    /// Writes the one-file entry `connection`.
    fn single(&self, connection: &str, bytes: &[u8]) {
        if let Err(e) = fs::write(layout::entry_path(self.root(), connection), bytes) {
            panic!("writing {connection}: {e}");
        }
    }

    fn has(&self, connection: &str) -> bool {
        layout::entry_path(self.root(), connection).exists()
            || layout::state_path(self.root(), connection).exists()
    }

    fn progress_path(&self, connection: &str) -> PathBuf {
        self.root()
            .join(layout::STATE_DIR)
            .join(format!("{connection}.upload"))
    }

    fn progress(&self, connection: &str) -> serde_json::Value {
        let text = match fs::read(self.progress_path(connection)) {
            Ok(text) => text,
            Err(e) => panic!("reading the upload progress of {connection}: {e}"),
        };
        match serde_json::from_slice(&text) {
            Ok(value) => value,
            Err(e) => panic!("parsing the upload progress of {connection}: {e}"),
        }
    }

    fn set_progress(&self, connection: &str, progress: &serde_json::Value) {
        let written = serde_json::to_vec(progress)
            .map_err(std::io::Error::other)
            .and_then(|bytes| fs::write(self.progress_path(connection), bytes));
        if let Err(e) = written {
            panic!("writing the upload progress of {connection}: {e}");
        }
    }
}

fn config(spool: &Spool, moto: &Moto) -> AuditS3Config {
    AuditS3Config {
        local: spool.root().to_owned(),
        access_key: Secret::new("testing".to_owned()),
        secret_key: Secret::new("testing".to_owned()),
        bucket: BUCKET.to_owned(),
        region: String::new(),
        endpoint: moto.endpoint(),
        cacert: String::new(),
        acl: String::new(),
        // ContainerSSH's default; 127.0.0.1 cannot be virtual-hosted, so path style is used.
        path_style_access: false,
        upload_part_size: PART,
        parallel_uploads: 2,
        metadata: AuditS3Metadata {
            ip: true,
            username: true,
        },
        max_spool_size: 0,
    }
}

/// Quick scans and retries, so the tests do not wait for the production timing.
fn quick() -> UploaderTiming {
    UploaderTiming {
        scan_interval: Duration::from_millis(100),
        first_retry: Duration::from_millis(100),
        max_retry: Duration::from_secs(1),
    }
}

fn start(config: &AuditS3Config, lifecycle: &Lifecycle, timing: UploaderTiming) -> UploaderHandle {
    // The uploader's log in the output of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("sshpod_audit=debug")
        .with_test_writer()
        .try_init();
    match Uploader::start_with(config, lifecycle, timing) {
        Ok(handle) => handle,
        Err(e) => panic!("starting the uploader: {e}"),
    }
}

/// Cancels the uploader's lifecycle, which must end at once.
async fn stop(lifecycle: &Lifecycle) {
    lifecycle.cancel();
    if tokio::time::timeout(Duration::from_secs(5), lifecycle.wait())
        .await
        .is_err()
    {
        panic!("the uploader did not stop within 5 s of its cancellation");
    }
}

async fn wait(
    handle: &UploaderHandle,
    what: &str,
    done: impl FnMut(&UploaderStats) -> bool,
) -> UploaderStats {
    match tokio::time::timeout(DEADLINE, handle.wait_for(done)).await {
        Ok(stats) if !stats.stopped => stats,
        other => panic!("waiting for {what}: {other:?}, now {:?}", handle.stats()),
    }
}

const A: &str = "0000000000000000000000000000000a";
const B: &str = "0000000000000000000000000000000b";
const C: &str = "0000000000000000000000000000000c";
const D: &str = "0000000000000000000000000000000d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_recordings_arrive_whole_with_their_metadata_and_leave_the_spool() {
    let moto = Moto::start(0);
    create_bucket(&moto).await;
    let spool = Spool::new();
    // Left by an earlier run: uploaded at start.
    spool.state(A, true);
    spool.append(
        A,
        "events.jsonl",
        b"{\"seq\":0,\"kind\":\"connected\"}\n{\"seq\":1,\"kind\":\"end\"}\n",
    );
    spool.append(A, "channel-0.cast", &noise(1, 3000));
    spool.state(B, true);
    spool.single(B, &noise(2, 5000));
    // Still being recorded: stays.
    spool.state(C, false);
    spool.append(C, "events.jsonl", b"{\"seq\":0}\n");

    let mut config = config(&spool, &moto);
    config.acl = "public-read".to_owned();
    let lifecycle = Lifecycle::new();
    // No scans but the first: what comes later arrives because the recorder notifies.
    let timing = UploaderTiming {
        scan_interval: Duration::from_secs(3600),
        ..quick()
    };
    let handle = start(&config, &lifecycle, timing);
    wait(&handle, "the two complete entries", |s| {
        s.uploaded_entries == 2
    })
    .await;

    spool.state(D, false);
    // As the recorder does: the bytes are counted before they are written.
    assert!(handle.budget().try_reserve(10).is_ok());
    spool.append(D, "events.jsonl", b"{\"seq\":0}\n");
    spool.state(D, true);
    handle.notify(D);
    let stats = wait(&handle, "the notified entry", |s| s.uploaded_entries == 3).await;
    assert_eq!(stats.pending_entries, 1, "C is still recorded");

    let (headers, body) = object(&moto, &format!("{A}/events.jsonl")).await;
    assert_eq!(
        body,
        b"{\"seq\":0,\"kind\":\"connected\"}\n{\"seq\":1,\"kind\":\"end\"}\n"
    );
    assert_eq!(header(&headers, "content-type"), "application/x-ndjson");
    assert_eq!(header(&headers, "x-amz-meta-timestamp"), "1796616000");
    assert_eq!(header(&headers, "x-amz-meta-authenticated"), "true");
    assert_eq!(header(&headers, "x-amz-meta-country"), "XX");
    assert_eq!(header(&headers, "x-amz-meta-username"), "alice");
    assert_eq!(header(&headers, "x-amz-meta-ip"), "192.0.2.7");
    let (headers, body) = object(&moto, &format!("{A}/channel-0.cast")).await;
    assert_eq!(body, noise(1, 3000));
    assert_eq!(header(&headers, "content-type"), "application/x-asciicast");
    let (headers, body) = object(&moto, B).await;
    assert_eq!(body, noise(2, 5000));
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(
        object(&moto, &format!("{D}/events.jsonl")).await.1,
        b"{\"seq\":0}\n"
    );

    let (_, _, acl) = get(&moto, &format!("{B}?acl")).await;
    let acl = String::from_utf8_lossy(&acl);
    assert!(
        acl.contains("global/AllUsers</URI></Grantee><Permission>READ"),
        "public-read: {acl}"
    );

    let (status, _, _) = get(&moto, &format!("{C}/events.jsonl")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an incomplete entry's small file waits"
    );
    for uploaded in [A, B, D] {
        assert!(!spool.has(uploaded), "{uploaded} is still in the spool");
        assert!(!spool.progress_path(uploaded).exists());
    }
    assert!(spool.has(C));
    assert_eq!(
        handle.budget().used(),
        10,
        "only C's bytes are left in the budget"
    );

    stop(&lifecycle).await;
    assert!(handle.stats().stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_recording_uploads_parts_while_it_runs() {
    let moto = Moto::start(0);
    create_bucket(&moto).await;
    let spool = Spool::new();
    let lifecycle = Lifecycle::new();
    let handle = start(&config(&spool, &moto), &lifecycle, quick());

    let data = noise(3, 3 * PART + PART / 5);
    spool.state(A, false);
    handle.notify(A);
    spool.append(A, "channel-0.cast", &data[..(2 * PART + PART / 2) as usize]);
    wait(&handle, "two parts", |s| s.uploaded_bytes >= 2 * PART).await;

    // The parts are in the store while the session runs; the object is not, yet.
    let key = format!("{A}/channel-0.cast");
    let progress = spool.progress(A);
    let upload = progress["files"][&key]["uploadId"]
        .as_str()
        .unwrap_or_default();
    assert!(!upload.is_empty(), "{progress}");
    let (status, _, parts) = get(&moto, &format!("{key}?uploadId={upload}")).await;
    let parts = String::from_utf8_lossy(&parts);
    assert_eq!(status, StatusCode::OK, "{parts}");
    assert_eq!(
        parts.matches(&format!("<Size>{PART}</Size>")).count(),
        2,
        "{parts}"
    );
    let (status, _, _) = get(&moto, &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        handle.uploaded_bytes(),
        2 * PART,
        "only whole parts of the written prefix"
    );

    spool.append(A, "channel-0.cast", &data[(2 * PART + PART / 2) as usize..]);
    spool.append(A, "events.jsonl", b"{\"seq\":0}\n");
    spool.state(A, true);
    handle.notify(A);
    wait(&handle, "the complete entry", |s| s.uploaded_entries == 1).await;
    assert_eq!(object(&moto, &key).await.1, data);
    assert_eq!(
        object(&moto, &format!("{A}/events.jsonl")).await.1,
        b"{\"seq\":0}\n"
    );
    assert_eq!(handle.uploaded_bytes(), data.len() as u64 + 10);
    assert!(!spool.has(A));
    lifecycle.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_written_while_the_store_is_down_arrive_when_it_is_back() {
    let mut moto = Moto::start(0);
    create_bucket(&moto).await;
    let port = moto.port;
    let spool = Spool::new();
    let lifecycle = Lifecycle::new();
    let handle = start(&config(&spool, &moto), &lifecycle, quick());

    let long = noise(4, 3 * PART + 123);
    spool.state(A, false);
    spool.append(A, "channel-0.cast", &long[..(PART + PART / 2) as usize]);
    handle.notify(A);
    wait(&handle, "the first part", |s| s.uploaded_bytes >= PART).await;

    moto.kill();
    spool.append(A, "channel-0.cast", &long[(PART + PART / 2) as usize..]);
    spool.state(A, true);
    spool.state(B, true);
    spool.append(B, "events.jsonl", &noise(5, 700));
    spool.state(C, true);
    spool.single(C, &noise(6, 900));
    handle.notify(B);
    let down = wait(&handle, "the outage to be seen", |s| {
        s.failures_in_a_row >= 3
    })
    .await;
    assert_eq!(down.uploaded_entries, 0);
    assert!(
        spool.has(A) && spool.has(B) && spool.has(C),
        "nothing leaves the spool"
    );

    // A new store on the same address; moto kept nothing, so the bucket is new and the
    // multipart upload of A is unknown to it: A is sent again from its start.
    let moto = Moto::start(port);
    create_bucket(&moto).await;
    let stats = wait(&handle, "everything", |s| {
        s.uploaded_entries == 3 && s.pending_entries == 0
    })
    .await;
    assert_eq!(stats.failures_in_a_row, 0);
    assert_eq!(object(&moto, &format!("{A}/channel-0.cast")).await.1, long);
    assert_eq!(
        object(&moto, &format!("{B}/events.jsonl")).await.1,
        noise(5, 700)
    );
    assert_eq!(object(&moto, C).await.1, noise(6, 900));
    assert!(!spool.has(A) && !spool.has(B) && !spool.has(C));
    stop(&lifecycle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_uploader_resumes_the_same_multipart_uploads() {
    let moto = Moto::start(0);
    create_bucket(&moto).await;
    let spool = Spool::new();
    let config = config(&spool, &moto);
    let written = 2 * PART + PART / 2;
    let all = 3 * PART + PART / 3;
    let data = |seed| noise(seed, all);
    for (connection, seed) in [(A, 7), (B, 8), (C, 9)] {
        spool.state(connection, false);
        spool.append(
            connection,
            "channel-0.cast",
            &data(seed)[..written as usize],
        );
    }

    let first = Lifecycle::new();
    let handle = start(&config, &first, quick());
    wait(&handle, "two parts of each", |s| {
        s.uploaded_bytes >= 6 * PART
    })
    .await;
    // The process goes away mid-upload.
    stop(&first).await;
    assert_eq!(handle.uploaded_bytes(), 6 * PART);

    let key = |connection: &str| format!("{connection}/channel-0.cast");
    let upload_of_a = spool.progress(A)["files"][key(A)]["uploadId"].clone();
    // B: killed after the store took its second part but before that was noted.
    let mut progress = spool.progress(B);
    if let Some(parts) = progress["files"][key(B)]["parts"].as_array_mut() {
        parts.pop();
    }
    progress["files"][key(B)]["covered"] = PART.into();
    spool.set_progress(B, &progress);
    // C: the store no longer knows the upload (expired, or aborted by a lifecycle rule).
    let mut progress = spool.progress(C);
    progress["files"][key(C)]["uploadId"] = "no-such-upload".into();
    spool.set_progress(C, &progress);

    for (connection, seed) in [(A, 7), (B, 8), (C, 9)] {
        spool.append(
            connection,
            "channel-0.cast",
            &data(seed)[written as usize..],
        );
        spool.state(connection, true);
    }
    let second = Lifecycle::new();
    let handle = start(&config, &second, quick());
    let stats = wait(&handle, "the three entries", |s| s.uploaded_entries == 3).await;
    for (connection, seed) in [(A, 7), (B, 8), (C, 9)] {
        assert_eq!(
            object(&moto, &key(connection)).await.1,
            data(seed),
            "{connection}"
        );
        assert!(!spool.has(connection));
    }
    // A sent only what the first run had not; B its forgotten part again; C all of it.
    assert_eq!(stats.uploaded_bytes, (all - 2 * PART) + (all - PART) + all);
    assert!(upload_of_a.is_string());
    second.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_lists_and_reads_what_was_uploaded() {
    let moto = Moto::start(0);
    create_bucket(&moto).await;
    let spool = Spool::new();
    spool.state(A, true);
    spool.append(A, "events.jsonl", b"{\"seq\":0}\n");
    spool.append(A, "channel-0.cast", &noise(10, PART + 5));
    spool.state(B, true);
    spool.single(B, &noise(11, 77));
    let config = config(&spool, &moto);
    let lifecycle = Lifecycle::new();
    let handle = start(&config, &lifecycle, quick());
    wait(&handle, "both entries", |s| s.uploaded_entries == 2).await;
    lifecycle.cancel();

    let store = match S3Store::new(&config) {
        Ok(store) => store,
        Err(e) => panic!("opening the bucket: {e}"),
    };
    assert_eq!(store.describe(), format!("s3://{BUCKET}"));
    let mut ids = store.list().await.unwrap_or_default();
    ids.sort();
    assert_eq!(ids, [A, B]);
    assert_eq!(
        store.files(A).await.unwrap_or_default(),
        [
            ("channel-0.cast".to_owned(), PART + 5),
            ("events.jsonl".to_owned(), 10)
        ]
    );
    assert_eq!(
        store.files(B).await.unwrap_or_default(),
        [(B.to_owned(), 77)]
    );
    assert_eq!(
        store.read(A, "channel-0.cast").await.ok(),
        Some(noise(10, PART + 5))
    );
    assert_eq!(store.read(B, B).await.ok(), Some(noise(11, 77)));

    assert_eq!(store.files(C).await.ok(), Some(Vec::new()));
    for (connection, name) in [(A, "nothing.cast"), (C, C), (A, "../b"), ("..", "x")] {
        let kind = store.read(connection, name).await.err().map(|e| e.kind());
        assert_eq!(
            kind,
            Some(std::io::ErrorKind::NotFound),
            "{connection}/{name}"
        );
    }
    assert_eq!(store.files("../etc").await.ok(), Some(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_store_is_trusted_through_cacert_alone() {
    let pki = tempfile::tempdir().unwrap_or_else(|e| panic!("a directory for the PKI: {e}"));
    let (ca, cert, key) = pki_files(pki.path());
    let moto = Moto::start_tls(0, &cert, &key);
    create_bucket(&moto).await;
    let spool = Spool::new();
    spool.state(A, true);
    spool.append(A, "events.jsonl", b"{\"seq\":0}\n");

    let mut config = config(&spool, &moto);
    let untrusted = S3Store::new(&config).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        untrusted.list().await.is_err(),
        "a certificate of an unknown CA must not be accepted"
    );

    config.cacert = ca;
    let lifecycle = Lifecycle::new();
    let handle = start(&config, &lifecycle, quick());
    wait(&handle, "the entry, over https", |s| {
        s.uploaded_entries == 1
    })
    .await;
    lifecycle.cancel();
    let trusted = S3Store::new(&config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trusted.list().await.ok(), Some(vec![A.to_owned()]));
}

/// A CA (returned as PEM) and a server certificate and key for 127.0.0.1 signed by it
/// (written to files for moto).
fn pki_files(dir: &Path) -> (String, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

    let generated = (|| -> Result<(String, String, String), rcgen::Error> {
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let mut server = CertificateParams::new(Vec::<String>::new())?;
        server.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let key = KeyPair::generate()?;
        let cert = server.signed_by(&key, &issuer)?;
        Ok((issuer.pem(), cert.pem(), key.serialize_pem()))
    })();
    let (ca, cert, key) = generated.unwrap_or_else(|e| panic!("generating the PKI: {e}"));
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    if let Err(e) = fs::write(&cert_path, cert).and_then(|()| fs::write(&key_path, key)) {
        panic!("writing the PKI: {e}");
    }
    (ca, cert_path, key_path)
}
