//! The fake backend, driven only through the `Backend` and `Container` traits, as the server
//! drives it.

use std::time::Duration;

use super::{FakeBackend, FakeContainer, OnConnect};
use sshpod_core::{
    Backend, BackendError, Command, ConnectionContext, ConnectionId, Container, ContainerFile,
    ExitStatus, Process, ProcessSpec, Signal, TerminalSize, TtySpec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(5);

fn ctx(user: &str) -> ConnectionContext {
    ConnectionContext::new(
        ConnectionId::random(),
        user.to_owned(),
        "127.0.0.1:2222".parse().unwrap(),
    )
}

fn exec(line: &str) -> ProcessSpec {
    ProcessSpec {
        command: Command::Exec(line.to_owned()),
        env: Vec::new(),
        tty: None,
        x11: None,
    }
}

fn tty(cols: u16, rows: u16) -> TtySpec {
    TtySpec {
        term: "xterm".to_owned(),
        size: TerminalSize { cols, rows },
        stty_modes: Vec::new(),
    }
}

async fn container() -> (FakeBackend, FakeContainer) {
    let fake = FakeBackend::new();
    let c = fake.connect(&ctx("alice")).await.unwrap();
    (fake, c)
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

/// What a process printed and how it ended, after `input` and EOF on its stdin.
struct Ran {
    stdout: String,
    stderr: Option<String>,
    status: ExitStatus,
}

async fn finish(mut p: Process, input: &[u8]) -> Ran {
    let input = input.to_vec();
    let mut stdin = p.stdin;
    let feed = async move {
        // A process that does not read its stdin may be gone already.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    };
    let stderr = p.stderr.take();
    let (_, stdout, stderr) = tokio::join!(feed, read_all(p.stdout), async move {
        match stderr {
            Some(s) => Some(read_all(s).await),
            None => None,
        }
    });
    let status = p.control.wait().await.unwrap();
    Ran {
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: stderr.map(|s| String::from_utf8(s).unwrap()),
        status,
    }
}

async fn run(c: &FakeContainer, spec: ProcessSpec, input: &[u8]) -> Ran {
    finish(c.exec(spec).await.unwrap(), input).await
}

#[tokio::test(start_paused = true)]
async fn echo_prints_its_arguments() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("echo  hello   world"), b"").await;
    assert_eq!(ran.stdout, "hello world\n");
    assert_eq!(ran.stderr.as_deref(), Some(""));
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn stderr_prints_on_stderr() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("stderr oh no"), b"").await;
    assert_eq!(ran.stdout, "");
    assert_eq!(ran.stderr.as_deref(), Some("oh no\n"));
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn exit_ends_with_its_code() {
    let (_fake, c) = container().await;
    assert_eq!(
        run(&c, exec("exit 3"), b"").await.status,
        ExitStatus::Code(3)
    );
    assert_eq!(run(&c, exec("exit"), b"").await.status, ExitStatus::Code(0));
    let bad = run(&c, exec("exit x"), b"").await;
    assert_eq!(bad.status, ExitStatus::Code(2));
    assert_eq!(bad.stderr.as_deref(), Some("sh: exit: Illegal number: x\n"));
}

#[tokio::test(start_paused = true)]
async fn cat_copies_stdin_until_eof() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("cat"), b"one\ntwo\n").await;
    assert_eq!(ran.stdout, "one\ntwo\n");
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn count_counts_more_than_a_pipe_holds() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("count"), &vec![7u8; 300_000]).await;
    assert_eq!(ran.stdout, "300000\n");
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn yes_bytes_writes_that_many_bytes() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("yes-bytes 200001"), b"").await;
    assert_eq!(ran.stdout.len(), 200_001);
    assert!(ran.stdout.bytes().all(|b| b == b'y'));
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn env_prints_connection_and_client_variables_sorted() {
    let fake = FakeBackend::new();
    let mut context = ctx("alice");
    context.environment = vec![
        ("ZED".into(), "webhook".into()),
        ("LANG".into(), "C".into()),
    ];
    let c = fake.connect(&context).await.unwrap();
    let mut spec = exec("env");
    spec.env = vec![("LANG".into(), "de_DE".into()), ("A".into(), "1".into())];
    let ran = run(&c, spec.clone(), b"").await;
    assert_eq!(ran.stdout, "A=1\nLANG=de_DE\nZED=webhook\n");

    spec.tty = Some(tty(80, 24));
    let ran = run(&c, spec, b"").await;
    assert_eq!(ran.stdout, "A=1\nLANG=de_DE\nTERM=xterm\nZED=webhook\n");
}

#[tokio::test(start_paused = true)]
async fn tty_without_a_terminal_says_so() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("tty"), b"").await;
    assert_eq!(ran.stdout, "no tty\n");
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn tty_prints_the_terminal_and_each_resize() {
    let (_fake, c) = container().await;
    let mut spec = exec("tty");
    spec.tty = Some(tty(80, 24));
    let mut p = c.exec(spec).await.unwrap();
    assert!(p.stderr.is_none(), "a tty merges stderr into stdout");
    let mut line = vec![0; 64];
    let n = p.stdout.read(&mut line).await.unwrap();
    assert_eq!(&line[..n], b"term=xterm cols=80 rows=24\n");
    p.control
        .resize(TerminalSize {
            cols: 120,
            rows: 40,
        })
        .await
        .unwrap();
    let n = p.stdout.read(&mut line).await.unwrap();
    assert_eq!(&line[..n], b"resize 120x40\n");
    let ran = finish(p, b"").await;
    assert_eq!(ran.stdout, "");
    assert_eq!(ran.status, ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn a_tty_merges_stderr_into_stdout() {
    let (_fake, c) = container().await;
    let mut spec = exec("nosuch");
    spec.tty = Some(tty(80, 24));
    let ran = run(&c, spec, b"").await;
    assert_eq!(ran.stdout, "sh: nosuch: not found\n");
    assert_eq!(ran.stderr, None);
    assert_eq!(ran.status, ExitStatus::Code(127));
}

#[tokio::test(start_paused = true)]
async fn wait_ends_with_the_first_signal() {
    let (_fake, c) = container().await;
    let p = c.exec(exec("wait")).await.unwrap();
    p.control.signal(Signal::Usr1).await.unwrap();
    let ran = finish(p, b"").await;
    assert_eq!(ran.status, ExitStatus::Signal(Signal::Usr1));
    assert_eq!(ran.stdout, "");
}

#[tokio::test(start_paused = true)]
async fn sleep_forever_ignores_usr1_and_ends_on_term() {
    let (fake, c) = container().await;
    let mut p = c.exec(exec("sleep-forever")).await.unwrap();
    p.stdin.shutdown().await.unwrap();
    p.control.signal(Signal::Usr1).await.unwrap();
    // Still running after the first signal: a wait does not end.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), p.control.wait())
            .await
            .is_err()
    );
    assert_eq!(fake.record().processes_running, 1);
    p.control.signal(Signal::Term).await.unwrap();
    let ran = finish(p, b"").await;
    assert_eq!(ran.status, ExitStatus::Signal(Signal::Term));
    fake.wait_until_no_processes(LIMIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_signal_after_the_end_is_ignored() {
    let (_fake, c) = container().await;
    let p = c.exec(exec("exit 0")).await.unwrap();
    assert_eq!(p.control.wait().await.unwrap(), ExitStatus::Code(0));
    p.control.signal(Signal::Term).await.unwrap();
    assert_eq!(p.control.wait().await.unwrap(), ExitStatus::Code(0));
}

#[tokio::test(start_paused = true)]
async fn unknown_programs_are_not_found() {
    let (_fake, c) = container().await;
    let ran = run(&c, exec("vim notes.txt"), b"").await;
    assert_eq!(ran.stderr.as_deref(), Some("sh: vim: not found\n"));
    assert_eq!(ran.status, ExitStatus::Code(127));
}

#[tokio::test(start_paused = true)]
async fn the_shell_and_known_subsystems_are_cat() {
    let fake = FakeBackend::builder().subsystem("sftp").build();
    let c = fake.connect(&ctx("alice")).await.unwrap();
    let shell = ProcessSpec {
        command: Command::Shell,
        env: Vec::new(),
        tty: None,
        x11: None,
    };
    assert_eq!(run(&c, shell, b"ls\n").await.stdout, "ls\n");
    let sftp = ProcessSpec {
        command: Command::Subsystem("sftp".into()),
        env: Vec::new(),
        tty: None,
        x11: None,
    };
    assert_eq!(run(&c, sftp, b"\x00\x01").await.stdout, "\x00\x01");
    let unknown = ProcessSpec {
        command: Command::Subsystem("nope".into()),
        env: Vec::new(),
        tty: None,
        x11: None,
    };
    let err = c.exec(unknown.clone()).await.unwrap_err();
    assert!(matches!(err, BackendError::Exec { .. }), "{err:?}");
    // Refused execs are recorded too.
    assert_eq!(fake.execs().last(), Some(&unknown));
    assert_eq!(fake.execs().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn output_nobody_reads_ends_the_process_with_sigpipe() {
    let (_fake, c) = container().await;
    let p = c.exec(exec("yes-bytes 1000000")).await.unwrap();
    drop(p.stdout);
    assert_eq!(
        p.control.wait().await.unwrap(),
        ExitStatus::Signal(Signal::Pipe)
    );
}

#[tokio::test(start_paused = true)]
async fn dial_echoes_except_on_closed_ports() {
    let fake = FakeBackend::builder().closed_port(9).build();
    let c = fake.connect(&ctx("alice")).await.unwrap();
    let mut stream = c.dial("localhost", 8080).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stream).await, b"ping");

    let err = c.dial("localhost", 9).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Dial { ref host, port: 9, .. } if host == "localhost"),
        "{err:?}"
    );
    let dials = fake.record().dials;
    assert_eq!(dials.len(), 2);
    assert_eq!(dials[0].port, 8080);
}

#[tokio::test(start_paused = true)]
async fn connect_records_the_context() {
    let fake = FakeBackend::new();
    let mut context = ctx("bob");
    context.environment = vec![("K".into(), "V".into())];
    context.labels.insert("team".into(), "red".into());
    context.files.push(ContainerFile {
        path: "/etc/motd".into(),
        content: b"hi".to_vec(),
    });
    let _c = fake.connect(&context).await.unwrap();
    let seen = &fake.connects()[0];
    assert_eq!(seen.connection_id, context.connection_id);
    assert_eq!(seen.user, "bob");
    assert_eq!(seen.environment, context.environment);
    assert_eq!(seen.labels["team"], "red");
    assert_eq!(seen.files, context.files);
    assert_eq!(fake.containers_alive(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_connect_failures_make_nothing() {
    let fake = FakeBackend::builder()
        .on_connect(OnConnect::start_timeout(30))
        .build();
    fake.push_on_connect(OnConnect::start_failure("no space left"));
    fake.push_on_connect(OnConnect::Succeed);

    let first = fake.connect(&ctx("a")).await.unwrap_err();
    assert!(
        matches!(first, BackendError::StartContainer { ref reason, .. } if reason == "no space left"),
        "{first:?}"
    );
    let second = fake.connect(&ctx("b")).await;
    assert!(second.is_ok());
    let third = fake.connect(&ctx("c")).await.unwrap_err();
    assert!(
        matches!(third, BackendError::StartTimeout { seconds: 30, .. }),
        "{third:?}"
    );
    assert_eq!(fake.connects().len(), 3);
    assert_eq!(fake.containers_alive(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_held_connect_goes_on_release() {
    let fake = FakeBackend::builder().on_connect(OnConnect::Hold).build();
    let server_side = fake.clone();
    let login = tokio::spawn(async move { server_side.connect(&ctx("alice")).await });
    fake.wait_for_held_connects(1, LIMIT).await.unwrap();
    assert_eq!(fake.containers_alive(), 0);
    fake.release();
    let container = login.await.unwrap().unwrap();
    assert_eq!(fake.containers_alive(), 1);
    assert_eq!(fake.held_connects(), 0);
    assert_eq!(fake.record().abandoned_connects, 0);
    container.close().await.unwrap();
    fake.wait_until_no_containers(LIMIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_held_connect_given_up_makes_nothing() {
    let fake = FakeBackend::builder().on_connect(OnConnect::Hold).build();
    let given_up = tokio::time::timeout(Duration::from_secs(10), fake.connect(&ctx("alice"))).await;
    assert!(given_up.is_err());
    let record = fake.record();
    assert_eq!(record.held_connects, 0);
    assert_eq!(record.abandoned_connects, 1);
    assert_eq!(record.containers_alive, 0);
    // A release with nothing held lets no later connect through.
    fake.release();
    fake.set_on_connect(OnConnect::Succeed);
    assert!(fake.connect(&ctx("bob")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn every_close_is_counted_and_the_first_kills_the_processes() {
    let (fake, c) = container().await;
    let id = fake.connects()[0].connection_id;
    let p = c.exec(exec("sleep-forever")).await.unwrap();
    let mut stream = c.dial("localhost", 22).await.unwrap();
    c.close().await.unwrap();
    fake.wait_for_close(id, LIMIT).await.unwrap();
    assert_eq!(
        p.control.wait().await.unwrap(),
        ExitStatus::Signal(Signal::Kill)
    );
    assert_eq!(read_all(&mut stream).await, b"");
    assert!(c.exec(exec("echo late")).await.is_err());
    assert!(c.dial("localhost", 22).await.is_err());
    fake.wait_until_no_containers(LIMIT).await.unwrap();
    fake.wait_until_no_processes(LIMIT).await.unwrap();

    c.close().await.unwrap();
    assert_eq!(fake.closes(id), 2, "a second close is counted");
    assert_eq!(fake.containers_alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_never_holds_times_out_with_the_record() {
    let (fake, _c) = container().await;
    let err = fake
        .wait_until_no_containers(Duration::from_secs(3))
        .await
        .unwrap_err();
    assert_eq!(err.record.containers_alive, 1);
    let message = err.to_string();
    assert!(message.contains("no containers alive"), "{message}");
    assert!(message.contains("1 containers alive"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_kills_every_process() {
    let (fake, c) = container().await;
    let p = c.exec(exec("wait")).await.unwrap();
    fake.shutdown().await;
    assert_eq!(
        p.control.wait().await.unwrap(),
        ExitStatus::Signal(Signal::Kill)
    );
    assert_eq!(fake.record().shutdowns, 1);
    assert_eq!(fake.remove_orphans().await.unwrap(), 0);
}
