//! Child processes: started with their output in a log file, paused (SIGSTOP/SIGCONT),
//! stopped by SIGTERM (bounded, then SIGKILL) or killed with SIGKILL, and always killed when dropped (also on a panic).
//! On Linux each child also gets SIGKILL if the harness itself dies.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// How long a SIGTERMed process may take to exit before it is killed.
pub const TERM_EXIT_WAIT_MS: u64 = 8_000;
const EXIT_POLL_MS: u64 = 20;

pub struct Proc {
    child: Child,
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("open {}", path.display()))
}

// The chaos harness (a test tool, never shipped) signals and parents real processes: two
// libc calls, each with its SAFETY note.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

impl Proc {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = open_log(log)?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut command);
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        Ok(Proc { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    #[allow(unsafe_code)]
    fn signal(&self, signal: i32) {
        let Ok(pid) = i32::try_from(self.pid()) else { return };
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold the Child).
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGSTOP: the process is frozen (its sockets stay open, nothing it holds is read or
    /// answered) until `resume`.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM, then wait for the exit; SIGKILL after `TERM_EXIT_WAIT_MS`. True when the
    /// process exited on its own.
    pub async fn terminate(&mut self) -> bool {
        self.signal(libc::SIGTERM);
        // A paused process acts on SIGTERM only once it runs again.
        self.resume();
        let deadline = Instant::now() + Duration::from_millis(TERM_EXIT_WAIT_MS);
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(EXIT_POLL_MS)).await;
        }
        self.kill();
        false
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
    }
}

/// SIGKILL to `pid` from any thread, for a kill timed more finely than the async runtime's
/// timers allow. The caller must hold the process's `Proc` unreaped (so the pid is still its),
/// and reaps it afterwards (`Nodes::kill`).
#[allow(unsafe_code)]
pub fn sigkill_pid(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) on a child the harness has not reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// A log file's last `lines` lines, for failure messages.
pub fn log_tail(path: &PathBuf, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
