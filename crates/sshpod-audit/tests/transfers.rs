//! The transfer watchers against real OpenSSH programs.
//!
//! `sftp` and `scp -O` run with a stand-in for `ssh` (`-S`): a script that hands the remote
//! command to the test and relays its standard input and output over a Unix socket. The test
//! runs that command as a server would (`sftp-server` for the `sftp` subsystem, `sh -c` for an
//! exec) and records both directions in the order they pass, as sshpod's channel tap sees them:
//! a chunk is recorded before it is passed on, so a reply is always recorded after what it
//! answers. The recording is then fed to the watcher that the session's command picks: whole,
//! a byte at a time, joined, and cut at random places, which must all tell the same.
//!
//! The programs must be installed (`openssh-client`, `openssh-sftp-server`, `socat`); a test
//! fails, never skips, when one is missing.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as Process, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sshpod_audit::transfers::{watcher_for, FileOp, LinkKind};
use sshpod_core::Command;

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
/// How long any one step may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Which way a chunk went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Client to server.
    In,
    /// Server to client.
    Out,
}

/// Chunks in the order they passed.
type Tape = Arc<Mutex<Vec<(Side, Vec<u8>)>>>;

/// One session as it passed.
#[derive(Debug)]
struct Recording {
    command: Command,
    chunks: Vec<(Side, Vec<u8>)>,
}

/// A client's and a server's directories, and the relay between them.
struct Place {
    _dir: tempfile::TempDir,
    local: PathBuf,
    remote: PathBuf,
    relay: PathBuf,
    socket: PathBuf,
    command_file: PathBuf,
}

impl Place {
    fn new() -> Self {
        for program in ["sftp", "scp", "socat", "sh"] {
            assert!(
                find_program(program).is_some(),
                "{program} is not installed; these tests need openssh-client and socat"
            );
        }
        assert!(
            Path::new(SFTP_SERVER).exists(),
            "{SFTP_SERVER} is not installed; these tests need openssh-sftp-server"
        );
        let dir = ok(tempfile::tempdir(), "temporary directory");
        let root = dir.path().to_path_buf();
        let (local, remote) = (root.join("local"), root.join("remote"));
        ok(fs::create_dir(&local), "local directory");
        ok(fs::create_dir(&remote), "remote directory");
        let (relay, socket, command_file) = (
            root.join("relay.sh"),
            root.join("relay.sock"),
            root.join("command"),
        );
        let script = format!(
            "#!/bin/sh\n\
             # Stands in for ssh: hands its arguments (the remote command last) to the test,\n\
             # then relays standard input and output to it.\n\
             printf '%s\\n' \"$@\" > '{}'\n\
             exec socat - UNIX-CONNECT:'{}'\n",
            command_file.display(),
            socket.display()
        );
        ok(fs::write(&relay, script), "relay script");
        ok(
            fs::set_permissions(&relay, fs::Permissions::from_mode(0o755)),
            "relay script mode",
        );
        Self {
            _dir: dir,
            local,
            remote,
            relay,
            socket,
            command_file,
        }
    }

    /// Runs `client` (which must use [`Place::relay`] as its ssh), serves it, and returns what
    /// passed.
    fn record(&self, mut client: Process) -> Recording {
        let listener = ok(UnixListener::bind(&self.socket), "relay socket");
        let client = ok(
            client
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn(),
            "starting the client",
        );
        let client_pid = client.id();
        let client_done = spawn_wait(client);
        let (stream, _) = match within("the client to connect", move || listener.accept()) {
            Some(Ok(accepted)) => accepted,
            other => {
                kill(client_pid);
                panic!("the client did not connect: {other:?}");
            }
        };
        let command = self.command();
        let mut server = self.serve(&command);
        let server_pid = server.id();
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let to_server = relay_in(
            ok(stream.try_clone(), "socket clone"),
            take(server.stdin.take(), "server stdin"),
            Arc::clone(&chunks),
        );
        let to_client = relay_out(
            take(server.stdout.take(), "server stdout"),
            stream,
            Arc::clone(&chunks),
        );
        let server_done = spawn_wait(server);

        let Some(client) = recv(&client_done) else {
            kill(client_pid);
            kill(server_pid);
            panic!("the client did not finish within {DEADLINE:?}");
        };
        let Some(server) = recv(&server_done) else {
            kill(server_pid);
            panic!("the server did not finish within {DEADLINE:?}");
        };
        for (what, relay) in [("to the server", to_server), ("to the client", to_client)] {
            if recv(&relay).is_none() {
                panic!("the relay {what} did not finish within {DEADLINE:?}");
            }
        }
        assert!(
            client.status.success(),
            "the client failed: {}\n{}\nthe server said: {}",
            client.status,
            String::from_utf8_lossy(&client.stderr),
            String::from_utf8_lossy(&server.stderr),
        );
        let chunks = std::mem::take(&mut *ok(chunks.lock().map_err(|_| "poisoned"), "chunks"));
        Recording { command, chunks }
    }

    /// The command the client asked for, as sshpod gets it: a subsystem (`ssh -s`) or an exec.
    fn command(&self) -> Command {
        let text = ok(fs::read_to_string(&self.command_file), "relay's command");
        let args: Vec<&str> = text.lines().collect();
        let Some((last, options)) = args.split_last() else {
            panic!("the relay got no arguments");
        };
        if options.contains(&"-s") {
            Command::Subsystem((*last).to_owned())
        } else {
            Command::Exec((*last).to_owned())
        }
    }

    /// Starts what a server runs for `command`, in the remote directory.
    fn serve(&self, command: &Command) -> Child {
        let mut process = match command {
            Command::Subsystem(name) if name == "sftp" => Process::new(SFTP_SERVER),
            Command::Exec(line) => {
                let mut process = Process::new("sh");
                process.arg("-c").arg(line);
                process
            }
            other => panic!("the client asked for {other:?}"),
        };
        ok(
            process
                .current_dir(&self.remote)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn(),
            "starting the server",
        )
    }

    fn ssh(&self) -> String {
        self.relay.display().to_string()
    }
}

/// Client to server: record, then pass on; the server's input closes when the client's does.
fn relay_in(mut from: UnixStream, mut to: ChildStdin, chunks: Tape) -> mpsc::Receiver<()> {
    pump(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            push(&chunks, Side::In, &buffer[..n]);
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
    })
}

/// Server to client: record, then pass on; the client sees the end when the server's output
/// ends.
fn relay_out(
    mut from: impl Read + Send + 'static,
    to: UnixStream,
    chunks: Tape,
) -> mpsc::Receiver<()> {
    pump(move || {
        let mut buffer = vec![0; 64 * 1024];
        let mut writer = &to;
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            push(&chunks, Side::Out, &buffer[..n]);
            if writer.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    })
}

fn push(chunks: &Mutex<Vec<(Side, Vec<u8>)>>, side: Side, data: &[u8]) {
    match chunks.lock() {
        Ok(mut chunks) => chunks.push((side, data.to_vec())),
        Err(_) => panic!("the other relay panicked"),
    }
}

/// Runs `work` on a thread; the receiver hears when it is done.
fn pump(work: impl FnOnce() + Send + 'static) -> mpsc::Receiver<()> {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    finished
}

fn spawn_wait(child: Child) -> mpsc::Receiver<Output> {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        if let Ok(output) = child.wait_with_output() {
            let _ = done.send(output);
        }
    });
    finished
}

fn recv<T>(receiver: &mpsc::Receiver<T>) -> Option<T> {
    receiver.recv_timeout(DEADLINE).ok()
}

/// `work`'s result, or `None` if it takes longer than [`DEADLINE`].
fn within<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(work());
    });
    let result = recv(&finished);
    if result.is_none() {
        eprintln!("waited {DEADLINE:?} for {what}");
    }
    result
}

/// Stops a process this test started.
fn kill(pid: u32) {
    let _ = Process::new("kill").arg("-9").arg(pid.to_string()).status();
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn ok<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error:?}"),
    }
}

fn take<T>(value: Option<T>, what: &str) -> T {
    match value {
        Some(value) => value,
        None => panic!("no {what}"),
    }
}

/// What the watcher the session's command picks tells of `chunks`.
fn watch<'a>(command: &Command, chunks: impl IntoIterator<Item = (Side, &'a [u8])>) -> Vec<FileOp> {
    let Some(mut watcher) = watcher_for(command) else {
        panic!("no watcher for {command:?}");
    };
    let mut ops = Vec::new();
    for (side, data) in chunks {
        match side {
            Side::In => watcher.input(data, &mut ops),
            Side::Out => watcher.output(data, &mut ops),
        }
    }
    watcher.finish(&mut ops);
    ops
}

/// What the recording tells, checked to be the same however its bytes are cut.
fn ops(recording: &Recording) -> Vec<FileOp> {
    let whole = watch(
        &recording.command,
        recording
            .chunks
            .iter()
            .map(|(side, data)| (*side, data.as_slice())),
    );
    let bytewise = watch(
        &recording.command,
        recording
            .chunks
            .iter()
            .flat_map(|(side, data)| data.chunks(1).map(move |byte| (*side, byte))),
    );
    assert_eq!(bytewise, whole, "fed a byte at a time");
    let mut joined: Vec<(Side, Vec<u8>)> = Vec::new();
    for (side, data) in &recording.chunks {
        match joined.last_mut() {
            Some((last, bytes)) if last == side => bytes.extend_from_slice(data),
            _ => joined.push((*side, data.clone())),
        }
    }
    let joined_ops = watch(
        &recording.command,
        joined.iter().map(|(side, data)| (*side, data.as_slice())),
    );
    assert_eq!(
        joined_ops, whole,
        "fed each direction's consecutive chunks together"
    );
    whole
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn written(path: &Path, content: &[u8]) -> FileOp {
    FileOp::Written {
        path: path.display().to_string(),
        bytes: content.len() as u64,
        sha256: Some(sha256(content)),
    }
}

fn read(path: &Path, content: &[u8]) -> FileOp {
    FileOp::Read {
        path: path.display().to_string(),
        bytes: content.len() as u64,
        sha256: Some(sha256(content)),
    }
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

/// `len` bytes that do not repeat in any way a transfer could hide.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn write_file(path: &Path, content: &[u8]) {
    ok(
        fs::write(path, content),
        &format!("writing {}", path.display()),
    );
}

fn read_file(path: &Path) -> Vec<u8> {
    ok(fs::read(path), &format!("reading {}", path.display()))
}

/// An sftp session with one of everything, its expected operations, and where it happened.
fn sftp_session() -> (Place, Recording, Vec<FileOp>) {
    let place = Place::new();
    let (local, remote) = (&place.local, &place.remote);
    let small = b"hello, auditor\n".to_vec();
    // Several writes and pipelined reads of OpenSSH's 32 KiB.
    let big = content(1, 300_001);
    let served = content(2, 100_000);
    write_file(&local.join("small.txt"), &small);
    write_file(&local.join("big.bin"), &big);
    write_file(&local.join("empty"), b"");
    write_file(&remote.join("served.bin"), &served);
    ok(fs::create_dir(remote.join("old-dir")), "old-dir");

    let (l, r) = (
        |name: &str| path(&local.join(name)),
        |name: &str| path(&remote.join(name)),
    );
    let batch = [
        format!("put {} {}", l("small.txt"), r("small.txt")),
        format!("put {} {}", l("big.bin"), r("big.bin")),
        format!("put {} {}", l("empty"), r("empty")),
        format!("get {} {}", r("served.bin"), l("served.bin")),
        format!("rename {} {}", r("small.txt"), r("renamed.txt")),
        format!("mkdir {}", r("new-dir")),
        format!("rmdir {}", r("old-dir")),
        format!("ln -s {} {}", r("served.bin"), r("soft")),
        format!("ln {} {}", r("served.bin"), r("hard")),
        format!("rm {}", r("empty")),
        // Failures (a leading `-` lets the batch go on): nothing to tell.
        format!("-rm {}", r("missing")),
        format!("-rmdir {}", r("missing-dir")),
        format!("-rename {} {}", r("missing"), r("elsewhere")),
        format!("-put {} {}", l("small.txt"), r("no-such-dir/small.txt")),
    ]
    .join("\n");
    let batch_file = local.join("batch");
    write_file(&batch_file, batch.as_bytes());

    let mut sftp = Process::new("sftp");
    sftp.arg("-q")
        .arg("-S")
        .arg(place.ssh())
        .arg("-b")
        .arg(&batch_file)
        .arg("server");
    let recording = place.record(sftp);

    let expected = vec![
        written(&remote.join("small.txt"), &small),
        written(&remote.join("big.bin"), &big),
        written(&remote.join("empty"), b""),
        read(&remote.join("served.bin"), &served),
        FileOp::Renamed {
            from: r("small.txt"),
            to: r("renamed.txt"),
        },
        FileOp::DirCreated { path: r("new-dir") },
        FileOp::DirRemoved { path: r("old-dir") },
        FileOp::Linked {
            path: r("soft"),
            target: r("served.bin"),
            kind: LinkKind::Symbolic,
        },
        FileOp::Linked {
            path: r("hard"),
            target: r("served.bin"),
            kind: LinkKind::Hard,
        },
        FileOp::Removed { path: r("empty") },
    ];
    // What the client did really happened.
    assert_eq!(read_file(&remote.join("big.bin")), big);
    assert_eq!(read_file(&remote.join("renamed.txt")), small);
    assert_eq!(read_file(&local.join("served.bin")), served);
    assert!(remote.join("new-dir").is_dir() && !remote.join("old-dir").exists());
    assert!(!remote.join("empty").exists());
    (place, recording, expected)
}

#[test]
fn sftp_transfers_and_changes_are_told_with_paths_sizes_and_digests() {
    let (_place, recording, expected) = sftp_session();
    assert_eq!(recording.command, Command::Subsystem("sftp".into()));
    assert_eq!(ops(&recording), expected);
}

#[test]
fn scp_uploads_are_written_with_their_digests() {
    let place = Place::new();
    let (local, remote) = (&place.local, &place.remote);
    let one = content(3, 70_000);
    let two = b"second file\n".to_vec();
    write_file(&local.join("one.bin"), &one);
    write_file(&local.join("two.txt"), &two);
    write_file(&local.join("empty"), b"");

    // Several files: `scp -d -t DIR`.
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-S"])
        .arg(place.ssh())
        .arg(local.join("one.bin"))
        .arg(local.join("two.txt"))
        .arg(local.join("empty"))
        .arg(format!("server:{}/", path(remote)));
    let recording = place.record(scp);
    assert!(
        matches!(&recording.command, Command::Exec(line) if line.starts_with("scp -d -t ")),
        "{:?}",
        recording.command
    );
    assert_eq!(
        ops(&recording),
        vec![
            written(&remote.join("one.bin"), &one),
            written(&remote.join("two.txt"), &two),
            written(&remote.join("empty"), b""),
        ]
    );
    assert_eq!(read_file(&remote.join("one.bin")), one);

    // One file, times kept (`T` records), into a directory named without a slash.
    let place = Place::new();
    write_file(&place.local.join("one.bin"), &one);
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-p", "-S"])
        .arg(place.ssh())
        .arg(place.local.join("one.bin"))
        .arg(format!("server:{}", path(&place.remote)));
    let recording = place.record(scp);
    assert_eq!(
        ops(&recording),
        vec![written(&place.remote.join("one.bin"), &one)]
    );

    // One file onto a file of the same name.
    let place = Place::new();
    write_file(&place.local.join("two.txt"), &two);
    write_file(&place.remote.join("two.txt"), b"to be replaced");
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-S"])
        .arg(place.ssh())
        .arg(place.local.join("two.txt"))
        .arg(format!("server:{}", path(&place.remote.join("two.txt"))));
    let recording = place.record(scp);
    assert_eq!(
        ops(&recording),
        vec![written(&place.remote.join("two.txt"), &two)]
    );
    assert_eq!(read_file(&place.remote.join("two.txt")), two);
}

#[test]
fn scp_recursive_uploads_follow_the_tree() {
    let place = Place::new();
    let tree = place.local.join("tree");
    ok(fs::create_dir_all(tree.join("sub/deeper")), "tree");
    let top = content(4, 5_000);
    let deep = content(5, 40_000);
    write_file(&tree.join("top.txt"), &top);
    write_file(&tree.join("sub/deeper/deep.bin"), &deep);

    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-r", "-S"])
        .arg(place.ssh())
        .arg(&tree)
        .arg(format!("server:{}/", path(&place.remote)));
    let recording = place.record(scp);
    let mut told = ops(&recording);
    // The source lists a directory in its own order.
    told.sort_by_key(|op| format!("{op:?}"));
    let remote_tree = place.remote.join("tree");
    let mut expected = vec![
        written(&remote_tree.join("top.txt"), &top),
        written(&remote_tree.join("sub/deeper/deep.bin"), &deep),
    ];
    expected.sort_by_key(|op| format!("{op:?}"));
    assert_eq!(told, expected);
    assert_eq!(read_file(&remote_tree.join("sub/deeper/deep.bin")), deep);
}

#[test]
fn scp_downloads_are_read_with_their_digests() {
    let place = Place::new();
    let served = content(6, 123_457);
    write_file(&place.remote.join("served.bin"), &served);
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-S"])
        .arg(place.ssh())
        .arg(format!("server:{}", path(&place.remote.join("served.bin"))))
        .arg(&place.local);
    let recording = place.record(scp);
    assert!(
        matches!(&recording.command, Command::Exec(line) if line.starts_with("scp -f ")),
        "{:?}",
        recording.command
    );
    assert_eq!(
        ops(&recording),
        vec![read(&place.remote.join("served.bin"), &served)]
    );
    assert_eq!(read_file(&place.local.join("served.bin")), served);

    // A pattern the remote shell expands, and a directory.
    let place = Place::new();
    let logs = place.remote.join("logs");
    ok(fs::create_dir(&logs), "logs");
    let (a, b) = (content(7, 10), content(8, 33_000));
    write_file(&logs.join("a.log"), &a);
    write_file(&logs.join("b.log"), &b);
    write_file(&logs.join("c.txt"), b"not matched");
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-S"])
        .arg(place.ssh())
        .arg(format!("server:{}/*.log", path(&logs)))
        .arg(&place.local);
    let recording = place.record(scp);
    assert_eq!(
        ops(&recording),
        vec![read(&logs.join("a.log"), &a), read(&logs.join("b.log"), &b)]
    );

    let place = Place::new();
    let tree = place.remote.join("tree");
    ok(fs::create_dir_all(tree.join("sub")), "tree");
    write_file(&tree.join("sub/inner.bin"), &b);
    let mut scp = Process::new("scp");
    scp.args(["-O", "-q", "-r", "-S"])
        .arg(place.ssh())
        .arg(format!("server:{}", path(&tree)))
        .arg(&place.local);
    let recording = place.record(scp);
    assert_eq!(ops(&recording), vec![read(&tree.join("sub/inner.bin"), &b)]);
    assert_eq!(read_file(&place.local.join("tree/sub/inner.bin")), b);
}

/// The sftp session, recorded once for the property below.
fn recorded_sftp() -> &'static (Recording, Vec<FileOp>) {
    static SESSION: OnceLock<(Recording, Vec<FileOp>)> = OnceLock::new();
    SESSION.get_or_init(|| {
        let (_place, recording, expected) = sftp_session();
        (recording, expected)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_real_session_cut_anywhere_tells_the_same(
        cuts in prop::collection::vec(any::<usize>(), 1..64),
    ) {
        let (recording, expected) = recorded_sftp();
        let total: usize = recording.chunks.iter().map(|(_, data)| data.len()).sum();
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (total + 1)).collect();
        cuts.sort_unstable();
        // Cut each chunk wherever a cut falls inside it.
        let mut pieces: Vec<(Side, &[u8])> = Vec::new();
        let mut start = 0;
        let mut next_cut = cuts.iter().peekable();
        for (side, data) in &recording.chunks {
            let mut rest: &[u8] = data;
            let mut at = start;
            while let Some(&&cut) = next_cut.peek() {
                if cut >= at + rest.len() {
                    break;
                }
                next_cut.next();
                let (head, tail) = rest.split_at(cut.saturating_sub(at));
                pieces.push((*side, head));
                at += head.len();
                rest = tail;
            }
            pieces.push((*side, rest));
            start += data.len();
        }
        prop_assert_eq!(&watch(&recording.command, pieces), expected);
    }
}
