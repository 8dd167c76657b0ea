//! Registry reloads from the command line: `serve` reads the registry again on SIGHUP and keeps its
//! process id in `server.pid_file`; `pforte reload` reads that file and sends the signal. What a
//! reload does is `app`'s (`registry::reload::Reload`); its outcome goes to the instance's log and
//! audit log, as a signal carries no answer (`POST /reload` on the operator's address has one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::registry::reload::{Reload, ReloadTrigger};

/// The SIGHUP listener, registered before anything else of `serve`: until a process handles SIGHUP,
/// the signal ends it, so the pid file is written only once this exists.
pub(super) struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    pub(super) fn register() -> anyhow::Result<Hangups> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup()).map_err(|e| anyhow::anyhow!("cannot listen for SIGHUP: {e}"))?;
            Ok(Hangups { signal })
        }
        #[cfg(not(unix))]
        Ok(Hangups {})
    }

    /// Reloads the registry on every SIGHUP until shutdown; one reload at a time, and signals that
    /// arrive during one are taken together as the next.
    pub(super) fn reload_on_signal(self, reload: Arc<dyn Reload>, shutdown: CancellationToken) {
        #[cfg(unix)]
        {
            let mut signal = self.signal;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        received = signal.recv() => if received.is_none() { return },
                        () = shutdown.cancelled() => return,
                    }
                    tracing::info!("SIGHUP: reading the registry again");
                    // Success and every problem are logged, counted and audited by the reload itself.
                    let _ = reload.reload(ReloadTrigger::Signal).await;
                }
            });
        }
        #[cfg(not(unix))]
        let _ = (reload, shutdown);
    }
}

/// `server.pid_file` while `serve` runs: written at start, removed at a clean stop.
pub(super) struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's id to `path`. A file naming another process that runs is refused: two
    /// instances sharing one file would let `pforte reload` reach only one of them. A file left by
    /// a process that is gone (a crash, a kill -9) is replaced.
    pub(super) fn claim(path: &Path) -> anyhow::Result<PidFile> {
        let pid = std::process::id();
        if let Some(other) = read_pid(path).ok().filter(|other| *other != pid) {
            if is_running(other) {
                anyhow::bail!(
                    "{} (server.pid_file) names process {other}, which is running: give each instance its own \
                     pid file, or remove the file if that process is not pforte",
                    path.display()
                );
            }
        }
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .map_err(|e| anyhow::anyhow!("cannot create {} for server.pid_file: {e}", folder.display()))?;
        }
        std::fs::write(path, format!("{pid}\n"))
            .map_err(|e| anyhow::anyhow!("cannot write {} (server.pid_file): {e}", path.display()))?;
        Ok(PidFile { path: path.to_owned(), pid })
    }

    /// Removes the file if it still names this process.
    pub(super) fn remove(self) {
        if read_pid(&self.path).ok() == Some(self.pid) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(file = %self.path.display(), error = %e, "could not remove the pid file");
            }
        }
    }
}

/// `pforte reload`: sends SIGHUP to the instance named by `server.pid_file`.
pub(super) fn send(settings: &Settings) -> anyhow::Result<()> {
    let Some(path) = &settings.server.pid_file else {
        anyhow::bail!(
            "server.pid_file is not set, so there is no instance to signal: set it, send SIGHUP to the process \
             yourself, or POST /reload on server.metrics_listen"
        );
    };
    let pid = read_pid(path).map_err(|e| anyhow::anyhow!("{e}; is pforte serve running with this configuration?"))?;
    hang_up(pid)?;
    println!(
        "asked pforte (process {pid}) to read the registry again; the outcome is in its log and audit log \
         (registry.reloaded, or registry.reload_refused with every problem in the log)"
    );
    Ok(())
}

fn read_pid(path: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {} (server.pid_file): {e}", path.display()))?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| anyhow::anyhow!("{} (server.pid_file) holds no process id", path.display()))
}

#[cfg(unix)]
fn process(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw)
}

#[cfg(unix)]
fn is_running(pid: u32) -> bool {
    match process(pid) {
        // EPERM: it runs, under another user.
        Some(pid) => !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH)),
        None => false,
    }
}

#[cfg(not(unix))]
fn is_running(_pid: u32) -> bool {
    false
}

#[cfg(unix)]
fn hang_up(pid: u32) -> anyhow::Result<()> {
    let target = process(pid).ok_or_else(|| anyhow::anyhow!("{pid} is not a process id"))?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP).map_err(|e| match e {
        rustix::io::Errno::SRCH => anyhow::anyhow!("process {pid} is not running (the pid file is left from a stop)"),
        e => anyhow::anyhow!("cannot signal process {pid}: {e}"),
    })
}

#[cfg(not(unix))]
fn hang_up(_pid: u32) -> anyhow::Result<()> {
    anyhow::bail!("signals need a Unix system; use POST /reload on server.metrics_listen")
}
