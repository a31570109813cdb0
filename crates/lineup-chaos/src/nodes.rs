//! The `lineup run` processes, one per site: start, pause, SIGTERM, kill -9.

use crate::clocks::Clocks;
use crate::fsyncs::FsyncFaults;
use crate::procs::Proc;
use crate::setup::{Layout, SiteLayout, ARI_PASSWORD, ARI_PASSWORD_ENV};
use anyhow::Context;
use std::process::Command;

pub struct Nodes {
    pub layout: Layout,
    procs: Vec<Option<Proc>>,
    /// Each node's wall-clock offset, when the scenario skews clocks.
    pub clocks: Option<Clocks>,
    /// Each node's failing-fsync switch, when the scenario fails fsyncs (Err: why not).
    pub fsyncs: Result<FsyncFaults, String>,
}

impl Nodes {
    pub fn new(layout: Layout) -> Nodes {
        let procs = layout.all_sites().map(|_| None).collect();
        Nodes { layout, procs, clocks: None, fsyncs: Err("this scenario fails no fsync".into()) }
    }

    pub fn site(&self, site: u64) -> anyhow::Result<&SiteLayout> {
        self.layout.all_sites().find(|s| s.site == site).with_context(|| format!("no site {site}"))
    }

    /// The founding sites (not the spare).
    pub fn sites(&self) -> Vec<u64> {
        self.layout.sites.iter().map(|s| s.site).collect()
    }

    fn slot(&mut self, site: u64) -> anyhow::Result<&mut Option<Proc>> {
        let index = self.layout.all_sites().position(|s| s.site == site).with_context(|| format!("no site {site}"))?;
        Ok(&mut self.procs[index])
    }

    /// Starts `lineup run` for `site` (its log is appended to across restarts).
    pub fn start(&mut self, site: u64) -> anyhow::Result<()> {
        let layout = self.site(site)?.clone();
        let mut command = Command::new(&self.layout.lineup_bin);
        command.arg("run").arg("--config").arg(&layout.config).env(ARI_PASSWORD_ENV, ARI_PASSWORD);
        let mut preload = Vec::new();
        if let Some(clocks) = &self.clocks {
            let (library, env) = clocks.env(site);
            preload.extend(library);
            command.envs(env);
        }
        if let Some((library, env)) = self.fsyncs.as_ref().ok().and_then(|fsyncs| fsyncs.env(site)) {
            preload.push(library.display().to_string());
            command.env(env.0, env.1);
        }
        if !preload.is_empty() {
            command.env("LD_PRELOAD", preload.join(":"));
        }
        let proc = Proc::spawn(&format!("lineup run (site {site})"), command, &layout.log)?;
        *self.slot(site)? = Some(proc);
        Ok(())
    }

    /// Whether the site's node process is alive (it may have exited on its own).
    pub fn running(&mut self, site: u64) -> bool {
        match self.slot(site) {
            Ok(Some(proc)) => proc.running(),
            _ => false,
        }
    }

    /// SIGTERM and wait (bounded) for the exit. True when it exited on its own.
    pub async fn terminate(&mut self, site: u64) -> anyhow::Result<bool> {
        let Some(mut proc) = self.slot(site)?.take() else { return Ok(true) };
        Ok(proc.terminate().await)
    }

    /// SIGSTOP (`on`) or SIGCONT (`!on`) of the site's running node.
    pub fn pause(&mut self, site: u64, on: bool) -> anyhow::Result<()> {
        let proc = self.slot(site)?.as_ref().with_context(|| format!("site {site} is not running"))?;
        if on {
            proc.pause();
        } else {
            proc.resume();
        }
        Ok(())
    }

    /// The pid of the site's node process, while the harness holds it.
    pub fn pid(&mut self, site: u64) -> Option<u32> {
        self.slot(site).ok()?.as_ref().map(Proc::pid)
    }

    /// kill -9.
    pub fn kill(&mut self, site: u64) -> anyhow::Result<()> {
        if let Some(mut proc) = self.slot(site)?.take() {
            proc.kill();
        }
        Ok(())
    }

    /// Stops every node (SIGTERM, bounded).
    pub async fn stop_all(&mut self) {
        for proc in self.procs.iter_mut() {
            if let Some(mut proc) = proc.take() {
                proc.terminate().await;
            }
        }
    }
}
