//! Process streams that bypass the engine, for an engine on this machine.
//!
//! Through `docker exec`, every byte a process reads or writes is copied by the engine and by
//! the container's shim, and those copies cost more CPU than everything sshpod does with the
//! same bytes. When the engine listens on a local socket, sshpod instead bind-mounts a
//! directory of its own into each connection container (read-only) and, for each process
//! without a terminal, makes two FIFOs there which the process's shell opens as its stdin and
//! stdout before it `exec`s the program. The exec still goes through the engine and carries
//! stderr, the exit code and signals; only the bulk streams take the short path.
//!
//! The handshake: sshpod opens both FIFOs first and holds a writer on each, so neither of the
//! shell's opens blocks and sshpod's reader cannot see an early end. The shell redirects and
//! writes one marker byte to its new stdout; sshpod then swaps its holds for the real ends
//! and unlinks both files. When the engine cannot see the directory (sshpod runs in a
//! container of its own, or the socket leads to another machine), the shell exits with
//! [`NOT_VISIBLE`] before running anything, and sshpod runs the program through the engine;
//! if no process has used the directory yet, that means the engine does not see it, and local
//! streams are off from then on (see [`StreamRoot::fifos_unreachable`]).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use sshpod_core::Lifecycle;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// Where a connection's directory appears inside its container.
pub(crate) const MOUNT_POINT: &str = "/.sshpod/io";

/// The shell's exit code when it cannot open the FIFOs: nothing of the program ran.
pub(crate) const NOT_VISIBLE: i64 = 97;

/// What the shell writes to its new stdout once both FIFOs are open (`printf .`).
const MARKER: &[u8; 1] = b".";

/// This instance's directory of connection directories (`ROOT/sshpod-INSTANCE`), locked
/// while the instance lives, and whether the engine sees it. Removed when dropped.
#[derive(Debug)]
pub(crate) struct StreamRoot {
    path: PathBuf,
    usable: AtomicBool,
    /// Set once a process got its streams here: the engine sees the directory, so a later
    /// process whose shell cannot open its FIFOs says something about its own container
    /// (a replaced `/bin/sh`, say), not about the engine.
    proven: AtomicBool,
    /// An exclusive lock on the directory: the sign, to other instances sharing `ROOT`, that
    /// this one is alive. The kernel drops it when the process ends, however it ends.
    _alive: Flock<File>,
    /// Instances whose directories were found unlocked here: their processes are gone, so
    /// their containers are orphans whatever state they are in (see `orphans.rs`). Kept
    /// until no container of theirs is left, as the directory itself is removed at once.
    dead: Mutex<HashSet<String>>,
    /// Where the tasks that outlive a process's [`Stdin`] run.
    lifecycle: Lifecycle,
}

impl StreamRoot {
    /// Creates this instance's directory under `root`, after removing those of instances
    /// that died. The instance directory is mode 0700: the engine (root) resolves the mount
    /// source, containers see only their own connection's directory (0711), and other users
    /// of this machine cannot reach any FIFO.
    pub(crate) fn prepare(root: &Path, instance: &str, lifecycle: Lifecycle) -> io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)?;
        let dead = sweep_dead_instances(root);
        if !dead.is_empty() {
            tracing::info!(
                directories = dead.len(),
                "removed stream directories of instances that died"
            );
        }
        // Made and locked under a name the sweep ignores, then put in place: another instance
        // starting at the same moment never sees it unlocked.
        let name = format!("{INSTANCE_PREFIX}{instance}");
        let staging = root.join(format!(".{name}.new"));
        make_dir(&staging, 0o700)?;
        let locked = Flock::lock(open_dir(&staging)?, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| io::Error::from(errno));
        let path = root.join(&name);
        let placed = locked.and_then(|alive| {
            check_root_owner(root, &staging)?;
            std::fs::rename(&staging, &path)?;
            Ok(alive)
        });
        match placed {
            Ok(alive) => Ok(Self {
                path,
                usable: AtomicBool::new(true),
                proven: AtomicBool::new(false),
                _alive: alive,
                dead: Mutex::new(dead),
                lifecycle,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&staging);
                Err(e)
            }
        }
    }

    /// Which of `owners` (instance ids) are known dead on this machine: their directories
    /// were found unlocked, now or earlier. Forgets the dead that own nothing any more.
    pub(crate) fn dead_among(&self, owners: &HashSet<&str>) -> HashSet<String> {
        let newly = self
            .path
            .parent()
            .map(sweep_dead_instances)
            .unwrap_or_default();
        let mut dead = self
            .dead
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        dead.extend(newly);
        dead.retain(|id| owners.contains(id.as_str()));
        dead.clone()
    }

    /// False once a container showed that the engine does not see this directory.
    pub(crate) fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// Records that a process got its streams through this directory.
    pub(crate) fn mark_proven(&self) {
        self.proven.store(true, Ordering::Relaxed);
    }

    /// A process's shell could not open its FIFOs. Before any process has, that means the
    /// engine does not see the directory: local streams are turned off for every later
    /// process. After, it is that container's own doing, and only its process is affected.
    pub(crate) fn fifos_unreachable(&self) {
        if self.proven.load(Ordering::Relaxed) {
            tracing::warn!(
                "a process's shell could not open its FIFOs although earlier ones could; it \
                 runs with its streams through the engine"
            );
        } else {
            self.mark_not_visible();
        }
    }

    /// Turns local streams off for every later process.
    pub(crate) fn mark_not_visible(&self) {
        if self.usable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                directory = %self.path.display(),
                "the Docker engine does not see this directory (is sshpod in a container, or \
                 the engine on another machine?); process streams go through the engine from \
                 now on. Set `docker.connection.streamDirectory` to a directory both share, or \
                 to \"\" to silence this"
            );
        }
    }

    /// A fresh directory for one connection, or `None` when local streams are off.
    pub(crate) fn for_connection(&self, connection_id: &str) -> Option<ConnectionDir> {
        if !self.usable() {
            return None;
        }
        let path = self.path.join(connection_id);
        match make_dir(&path, 0o711) {
            Ok(()) => Some(ConnectionDir {
                path,
                lifecycle: self.lifecycle.clone(),
            }),
            Err(e) => {
                tracing::warn!(
                    directory = %path.display(),
                    error = &e as &dyn std::error::Error,
                    "cannot make a stream directory; this connection's streams go through the engine"
                );
                let _ = std::fs::remove_dir_all(&path);
                None
            }
        }
    }
}

impl Drop for StreamRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Instance directories are named `sshpod-` and the instance id (hex digits, a `-` between
/// the seat and the rest); nothing else in the root is touched.
const INSTANCE_PREFIX: &str = "sshpod-";

/// Removes the directories of instances that died (those nobody holds a lock on) and returns
/// those instances' ids.
fn sweep_dead_instances(root: &Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return HashSet::new();
    };
    let mut removed = HashSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let instance = name
            .to_str()
            .and_then(|n| n.strip_prefix(INSTANCE_PREFIX))
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        let Some(instance) = instance else {
            continue;
        };
        // Not a directory (or swapped for something else since the listing): the open fails.
        let Ok(dir) = open_dir(&entry.path()) else {
            continue;
        };
        if let Ok(_dead) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            if std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.insert(instance.to_owned());
            }
        }
    }
    removed
}

/// Opens a directory itself: never a symbolic link, never anything that could block.
fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
}

/// The root must belong to sshpod's user and be writable by nobody else: whoever can rename
/// entries there could have the engine mount another directory into a container.
fn check_root_owner(root: &Path, ours: &Path) -> io::Result<()> {
    let root_meta = std::fs::symlink_metadata(root)?;
    let our_uid = std::fs::metadata(ours)?.uid();
    let writable_by_others = root_meta.mode() & 0o022 != 0;
    if root_meta.uid() != our_uid || writable_by_others || !root_meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by sshpod's user and writable by nobody else",
                root.display()
            ),
        ));
    }
    Ok(())
}

/// Creates `path` with `mode`, whatever the umask.
fn make_dir(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// True when the engine refused a container because it has no such directory as the stream
/// directory mounted into it: the engine does not see sshpod's files.
pub(crate) fn is_unseen_mount(error: &bollard::errors::Error, body: &ContainerCreateBody) -> bool {
    let bollard::errors::Error::DockerResponseServerError {
        status_code: 400,
        message,
    } = error
    else {
        return false;
    };
    message.contains("bind source path does not exist")
        && stream_mount(body).is_some_and(|source| message.contains(source))
}

/// Takes the stream directory's mount out of a create body.
pub(crate) fn unmount(body: &mut ContainerCreateBody) {
    if let Some(mounts) = body.host_config.as_mut().and_then(|h| h.mounts.as_mut()) {
        mounts.retain(|m| m.target.as_deref() != Some(MOUNT_POINT));
    }
}

/// The source of the stream directory's mount in a create body.
fn stream_mount(body: &ContainerCreateBody) -> Option<&str> {
    body.host_config
        .as_ref()?
        .mounts
        .as_ref()?
        .iter()
        .find(|m| m.target.as_deref() == Some(MOUNT_POINT))?
        .source
        .as_deref()
}

/// One connection's directory, mounted at [`MOUNT_POINT`] in its container. Removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct ConnectionDir {
    path: PathBuf,
    lifecycle: Lifecycle,
}

impl ConnectionDir {
    /// Adds the read-only bind mount to a container's create body. Read-only: a process
    /// can still open a FIFO there for writing, but nothing in the container can fill the
    /// host's directory. A mount rather than a bind: the engine must not create a missing
    /// source on its side (it would stay there); it refuses the container instead, see
    /// [`is_unseen_mount`].
    pub(crate) fn mount_into(&self, body: &mut ContainerCreateBody) {
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        host.mounts.get_or_insert_with(Vec::new).push(Mount {
            target: Some(MOUNT_POINT.to_owned()),
            source: Some(self.path.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
    }

    /// Makes and opens the FIFOs for one process.
    pub(crate) fn fifos(&self) -> io::Result<Fifos> {
        let name = hex::encode(rand::random::<[u8; 12]>());
        let stdin_path = self.path.join(format!("{name}.in"));
        let stdout_path = self.path.join(format!("{name}.out"));
        // Removed again if anything below fails.
        let files = FifoFiles {
            stdin_path,
            stdout_path,
        };
        // Others may read stdin and write stdout: the container's user is any uid.
        make_fifo(&files.stdin_path, 0o644)?;
        make_fifo(&files.stdout_path, 0o622)?;
        let stdin_hold = open_fifo(&files.stdin_path, true, true)?;
        grow_pipe(&stdin_hold);
        let stdout_file = open_fifo(&files.stdout_path, true, false)?;
        grow_pipe(&stdout_file);
        let stdout = pipe::Receiver::from_file(stdout_file)?;
        let stdout_hold = open_fifo(&files.stdout_path, false, true)?;
        Ok(Fifos {
            name,
            files,
            _stdin_hold: stdin_hold,
            stdout,
            _stdout_hold: stdout_hold,
            lifecycle: self.lifecycle.clone(),
        })
    }
}

impl Drop for ConnectionDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(
                    directory = %self.path.display(),
                    error = &e as &dyn std::error::Error,
                    "could not remove a stream directory"
                );
            }
        }
    }
}

/// The two FIFOs of one process, before and during the handshake. The files are unlinked
/// when this is dropped; open ends live on.
#[derive(Debug)]
pub(crate) struct Fifos {
    name: String,
    files: FifoFiles,
    /// Read-write, so the shell's open for reading does not wait for a writer.
    _stdin_hold: File,
    stdout: pipe::Receiver,
    /// Keeps the reader from seeing EOF before the shell has opened its end.
    _stdout_hold: File,
    lifecycle: Lifecycle,
}

/// The FIFOs' names, unlinked when dropped.
#[derive(Debug)]
struct FifoFiles {
    stdin_path: PathBuf,
    stdout_path: PathBuf,
}

impl Drop for FifoFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stdin_path);
        let _ = std::fs::remove_file(&self.stdout_path);
    }
}

/// The process's ends, as sshpod uses them after the handshake.
pub(crate) struct Connected {
    pub(crate) stdin: Stdin,
    pub(crate) stdout: pipe::Receiver,
}

/// A process's stdin FIFO, as sshpod writes it. Dropping it is EOF for the process.
///
/// After that, a program that opens `/dev/stdin` by path would wait for a writer for ever:
/// opening a named FIFO for reading blocks while it has no writer, where an anonymous pipe
/// (what `docker exec` gives) returns at once. So, until the process's last reader is gone,
/// sshpod opens and closes a writer now and then: each such late open then completes and
/// reads EOF, as it would on a pipe.
pub(crate) struct Stdin {
    sender: pipe::Sender,
    /// The FIFO itself (`O_PATH`), to open writers on once its name is gone.
    fifo: Option<File>,
    /// Where the answering of late opens runs, and what stops it at shutdown.
    lifecycle: Lifecycle,
}

/// How often late opens of `/dev/stdin` are answered: soon after EOF, then less often.
const FIRST_ANSWER: Duration = Duration::from_millis(10);
const ANSWER_EVERY: Duration = Duration::from_millis(200);

impl Drop for Stdin {
    fn drop(&mut self) {
        let (Some(fifo), Ok(_runtime)) = (self.fifo.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let stop = self.lifecycle.token().clone();
        self.lifecycle.spawn(async move {
            let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
            let mut pause = FIRST_ANSWER;
            // Opening fails (ENXIO) once no reader is left: the process and its children
            // are done with their input. At shutdown the containers are gone anyway.
            while answer_late_opens(&path).is_ok() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(ANSWER_EVERY);
            }
        });
    }
}

/// Opens and closes a writer on the FIFO behind `/proc/self/fd/N` (a link to follow, unlike
/// the FIFO's own name): readers waiting in `open` go on.
fn answer_late_opens(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
}

impl tokio::io::AsyncWrite for Stdin {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.sender).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.sender).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.sender).poll_shutdown(cx)
    }
}

/// A process's stdout FIFO, read until the process has ended and what it wrote before is
/// read. A child it leaves behind may hold the FIFO open for as long as it likes; through the
/// engine, a process's output ends with the process (the engine stops copying it), and so it
/// does here: else the session's end, and with it the process's exit status or signal, would
/// wait for that child.
pub(crate) struct Stdout {
    fifo: pipe::Receiver,
    /// Resolves once the process has exited. `None` once seen.
    exited: Option<ProcessEnded>,
}

/// A future that resolves once a process has exited.
pub(crate) type ProcessEnded = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Stdout {
    /// `exited` resolves once the process has exited.
    pub(crate) fn new(fifo: pipe::Receiver, exited: ProcessEnded) -> Self {
        Self {
            fifo,
            exited: Some(exited),
        }
    }
}

impl tokio::io::AsyncRead for Stdout {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Poll::Ready(read) = std::pin::Pin::new(&mut this.fifo).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        if let Some(exited) = this.exited.as_mut() {
            if exited.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.exited = None;
        }
        // The process has ended, so everything it wrote is in the pipe: read it with a plain
        // read (the reactor may not have seen it yet), and end where the pipe is empty.
        match nix::unistd::read(&this.fifo, buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(nix::errno::Errno::EAGAIN) => Poll::Ready(Ok(())),
            Err(errno) => Poll::Ready(Err(io::Error::from(errno))),
        }
    }
}

impl Fifos {
    /// Shell code that makes the FIFOs the process's stdin and stdout and announces it, or
    /// exits with [`NOT_VISIBLE`].
    pub(crate) fn shell_prelude(&self) -> String {
        let n = &self.name;
        format!(
            "{{ command exec <{MOUNT_POINT}/{n}.in >{MOUNT_POINT}/{n}.out; }} 2>/dev/null \
             || exit {NOT_VISIBLE}; printf .; "
        )
    }

    /// Waits for the shell's marker byte. Cancel-safe until it returns. Anything but the
    /// marker means someone else wrote to the FIFO: the streams are not the process's.
    pub(crate) async fn marker(&mut self) -> io::Result<()> {
        let mut marker = [0u8; 1];
        self.stdout.read_exact(&mut marker).await?;
        if marker != *MARKER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the process's output FIFO held something before the process wrote to it",
            ));
        }
        Ok(())
    }

    /// After the marker: the real ends. sshpod's hold on stdin is a reader too, so the open
    /// succeeds even when the process has already ended; writes then fail with a broken
    /// pipe, as they would to any ended process.
    pub(crate) fn connect(self) -> io::Result<Connected> {
        let stdin_path = &self.files.stdin_path;
        let sender = pipe::Sender::from_file(open_fifo(stdin_path, false, true)?)?;
        let fifo = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_PATH | OFlag::O_NOFOLLOW).bits())
            .open(stdin_path)?;
        // The holds and the names go here; the real ends live on.
        Ok(Connected {
            stdin: Stdin {
                sender,
                fifo: Some(fifo),
                lifecycle: self.lifecycle,
            },
            stdout: self.stdout,
        })
    }
}

/// Pipe capacity for a process's streams: larger than the default 64 KiB, so that sshpod and
/// the process hand over data in fewer, larger turns. Pages are only used while data waits.
const PIPE_CAPACITY: i32 = 1024 * 1024;

/// Best effort: a smaller pipe (the system's limit, or a user over its pipe budget) still works.
fn grow_pipe(file: &File) {
    if let Err(e) = nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_CAPACITY)) {
        tracing::debug!(error = %e, "pipe size unchanged");
    }
}

fn make_fifo(path: &Path, mode: u32) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(mode))?;
    // mkfifo applies the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Opens a FIFO without blocking and without following a symbolic link.
fn open_fifo(path: &Path, read: bool, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// An instance directory in a fresh temporary root, and one connection's directory in it
    /// (drop them in this order: the root outlives the connection).
    fn connection_dir() -> (tempfile::TempDir, StreamRoot, ConnectionDir) {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        let dir = root.for_connection("c1").unwrap();
        (tmp, root, dir)
    }

    /// Plays the container's part on the host: the shell's opens, the marker, the program.
    fn container_side(dir: &Path, name: &str) -> (std::fs::File, std::fs::File) {
        let stdin = File::open(dir.join(format!("{name}.in"))).unwrap();
        let mut stdout = OpenOptions::new()
            .write(true)
            .open(dir.join(format!("{name}.out")))
            .unwrap();
        std::io::Write::write_all(&mut stdout, b".").unwrap();
        (stdin, stdout)
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_and_ends_are_seen() {
        let (_tmp, _root, dir) = connection_dir();
        let mut fifos = dir.fifos().unwrap();
        assert!(fifos
            .shell_prelude()
            .contains(&format!("{MOUNT_POINT}/{}.in", fifos.name)));
        let (mut their_stdin, their_stdout) = container_side(&dir.path, &fifos.name);
        fifos.marker().await.unwrap();
        let name = fifos.name.clone();
        let mut ends = fifos.connect().unwrap();
        assert!(
            !dir.path.join(format!("{name}.in")).exists(),
            "files are unlinked once connected"
        );

        ends.stdin.write_all(b"input").await.unwrap();
        ends.stdin.shutdown().await.unwrap();
        drop(ends.stdin);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut their_stdin, &mut got).unwrap();
        assert_eq!(got, b"input", "the process sees its input, then EOF");

        let mut w = their_stdout;
        std::io::Write::write_all(&mut w, b"output").unwrap();
        drop(w);
        let mut out = Vec::new();
        ends.stdout.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"output", "sshpod sees the output, then EOF");
    }

    #[tokio::test]
    async fn the_reader_waits_for_a_shell_that_has_not_opened_yet() {
        let (_tmp, _root, dir) = connection_dir();
        let mut fifos = dir.fifos().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(50), fifos.marker()).await;
        assert!(waited.is_err(), "no early EOF while the shell is starting");
    }

    #[tokio::test]
    async fn input_to_a_process_that_ended_is_refused() {
        let (_tmp, _root, dir) = connection_dir();
        let mut fifos = dir.fifos().unwrap();
        let (their_stdin, their_stdout) = container_side(&dir.path, &fifos.name);
        fifos.marker().await.unwrap();
        drop((their_stdin, their_stdout));
        let mut ends = fifos.connect().unwrap();
        let late = ends.stdin.write_all(b"late").await;
        assert_eq!(late.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let mut out = Vec::new();
        ends.stdout.read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn directories_go_with_their_connection_and_their_instance() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        let dir = root.for_connection("gone").unwrap();
        let path = dir.path.clone();
        drop(dir);
        assert!(!path.exists(), "removed with its connection");
        let own = root.path.clone();
        assert!(own.is_dir());
        drop(root);
        assert!(!own.exists(), "removed with its instance");
    }

    #[test]
    fn start_up_removes_what_dead_instances_left_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let live = StreamRoot::prepare(tmp.path(), "11", Lifecycle::new()).unwrap();
        let live_connection = live.for_connection("c1").unwrap();
        std::fs::create_dir_all(tmp.path().join("sshpod-22/c2")).unwrap();
        std::fs::create_dir_all(tmp.path().join("sshpod-aa-bb/c3")).unwrap();
        std::fs::create_dir(tmp.path().join("sshpod-not-an-id")).unwrap();
        std::fs::create_dir(tmp.path().join("operator-files")).unwrap();

        let _new = StreamRoot::prepare(tmp.path(), "33", Lifecycle::new()).unwrap();
        assert!(
            !tmp.path().join("sshpod-22").exists(),
            "unlocked: its instance died"
        );
        assert!(
            !tmp.path().join("sshpod-aa-bb").exists(),
            "an instance with a seat in its id died too"
        );
        assert!(
            live_connection.path.is_dir(),
            "a live instance keeps its directories"
        );
        assert!(tmp.path().join("sshpod-not-an-id").is_dir());
        assert!(tmp.path().join("operator-files").is_dir());
    }

    #[test]
    fn instances_found_dead_are_known_dead_while_they_own_containers() {
        let tmp = tempfile::tempdir().unwrap();
        let live = StreamRoot::prepare(tmp.path(), "11", Lifecycle::new()).unwrap();
        std::fs::create_dir(tmp.path().join("sshpod-22")).unwrap();
        let new = StreamRoot::prepare(tmp.path(), "33", Lifecycle::new()).unwrap();
        // One that died while `new` serves: its directory is there, unlocked.
        std::fs::create_dir(tmp.path().join("sshpod-44")).unwrap();

        let owners = HashSet::from(["11", "22", "33", "44", "55"]);
        let dead = new.dead_among(&owners);
        assert_eq!(
            dead,
            HashSet::from(["22".to_owned(), "44".to_owned()]),
            "the live ones (11, this one) and one never seen here (55) are not known dead"
        );
        assert_eq!(
            new.dead_among(&owners),
            dead,
            "still known once their directories are gone"
        );
        assert_eq!(
            new.dead_among(&HashSet::from(["44"])),
            HashSet::from(["44".to_owned()])
        );
        assert_eq!(
            new.dead_among(&owners),
            HashSet::from(["44".to_owned()]),
            "one that owned nothing at a sweep is forgotten"
        );
        drop(live);
    }

    #[tokio::test(start_paused = true)]
    async fn output_ends_with_the_process_though_a_child_holds_it_open() {
        let (mut writer, reader) = pipe::pipe().unwrap();
        let (exited_tx, exited) = tokio::sync::oneshot::channel::<()>();
        let mut stdout = Stdout::new(
            reader,
            Box::pin(async move {
                let _ = exited.await;
            }),
        );
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"last words")
            .await
            .unwrap();
        let mut first = [0u8; 4];
        stdout.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"last");
        // The process exited; `writer` stays open, as a child left behind would hold it.
        drop(exited_tx);
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stdout.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rest, b" words",
            "what was written before the end is read, then EOF"
        );
        drop(writer);
    }

    #[test]
    fn a_refused_mount_is_recognised_and_taken_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        let dir = root.for_connection("c1").unwrap();
        let mut body = ContainerCreateBody::default();
        dir.mount_into(&mut body);
        let source = dir.path.display().to_string();
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message: format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {source}"
            ),
        };
        assert!(is_unseen_mount(&refused, &body));
        let other = bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message:
                "invalid mount config for type \"bind\": bind source path does not exist: /home/x"
                    .into(),
        };
        assert!(
            !is_unseen_mount(&other, &body),
            "an operator's own mount is their error"
        );
        unmount(&mut body);
        assert!(body.host_config.unwrap().mounts.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_late_open_of_dev_stdin_after_eof_reads_eof_instead_of_waiting() {
        let (_tmp, _root, dir) = connection_dir();
        let mut fifos = dir.fifos().unwrap();
        let (their_stdin, _their_stdout) = container_side(&dir.path, &fifos.name);
        fifos.marker().await.unwrap();
        let ends = fifos.connect().unwrap();
        drop(ends.stdin); // the client's input ended
                          // What `cat /dev/stdin` does in the process.
        let reopen = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&their_stdin)
        );
        let path = reopen.clone();
        let mut late = tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            File::open(path).and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut data))
        });
        let read = tokio::time::timeout(Duration::from_secs(10), &mut late).await;
        if read.is_err() {
            // Release the stuck open, so that the test fails instead of hanging.
            drop(answer_late_opens(&reopen));
        }
        assert_eq!(read.expect("the open completes").unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_foreign_first_byte_is_not_taken_for_the_marker() {
        let (_tmp, _root, dir) = connection_dir();
        let mut fifos = dir.fifos().unwrap();
        let mut intruder = OpenOptions::new()
            .write(true)
            .open(dir.path.join(format!("{}.out", fifos.name)))
            .unwrap();
        std::io::Write::write_all(&mut intruder, b"x").unwrap();
        let err = fifos.marker().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn only_sshpod_can_reach_an_instance_and_a_shared_root_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        let mode = std::fs::metadata(&root.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let dir = root.for_connection("c1").unwrap();
        let mode = std::fs::metadata(&dir.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o711, "the container's user may pass through");

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let refused = StreamRoot::prepare(&shared, "b2", Lifecycle::new()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            std::fs::read_dir(&shared).unwrap().count(),
            0,
            "nothing left there"
        );
    }

    #[test]
    fn one_container_cannot_turn_local_streams_off_once_they_worked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        root.mark_proven();
        root.fifos_unreachable();
        assert!(root.usable());
        let fresh = StreamRoot::prepare(&tmp.path().join("other"), "a2", Lifecycle::new()).unwrap();
        fresh.fifos_unreachable();
        assert!(
            !fresh.usable(),
            "before any process worked: the engine does not see it"
        );
    }

    #[test]
    fn a_root_the_engine_does_not_see_gives_no_more_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StreamRoot::prepare(tmp.path(), "a1", Lifecycle::new()).unwrap();
        root.mark_not_visible();
        assert!(!root.usable());
        assert!(root.for_connection("c1").is_none());
    }
}
