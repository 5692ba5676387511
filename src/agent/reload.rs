//! Reloading the config (SIGHUP): unchanged flows keep running, changed ones stop
//! and start again from their checkpoints, new ones start, removed ones stop.

use tokio::sync::watch;
use tokio::time::Instant;

use super::flow::FlowStart;
use super::{AgentError, RunningAgent, RunningFlow, log_flow_stop, stop_flows};
use crate::config::Config;

impl RunningAgent {
    /// Applies a new config: flows added start, removed ones stop, changed ones restart
    /// from their checkpoints. A stopping flow stops reading at once and has the grace
    /// period to deliver what it holds; what it could not deliver is read again by its
    /// successor. So a reload takes at most `shutdown_grace_period_secs`, even when an
    /// outage filled the in-flight budget.
    pub async fn reload(&mut self, config: Config) -> Result<(), AgentError> {
        let deadline = Instant::now() + config.agent.shutdown_grace_period;
        let changed: Vec<String> = self
            .flows
            .iter()
            .filter(|(name, running)| {
                !config
                    .flows
                    .iter()
                    .any(|f| f.name == **name && running.config == *f)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let stopping: Vec<(String, RunningFlow)> = changed
            .into_iter()
            .filter_map(|name| self.flows.remove(&name).map(|flow| (name, flow)))
            .collect();
        for (name, _) in &stopping {
            tracing::info!(flow = %name, "stopping flow for the new config");
            self.readiness.remove(name);
        }
        let reports = stop_flows(stopping, deadline).await;
        for (name, report) in &reports {
            log_flow_stop(name, report);
        }
        let checkpoints = self.ledger.checkpoints();
        self.config = config.clone();
        let mut prepared = Vec::new();
        let mut failure = None;
        for flow in &config.flows {
            if self.flows.contains_key(&flow.name) {
                continue;
            }
            let known = self
                .known_flows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&flow.name);
            let start = FlowStart {
                checkpoints: checkpoints
                    .iter()
                    .filter(|c| c.flow == flow.name)
                    .cloned()
                    .collect(),
                first_run: !known,
            };
            // The readings of a stopped flow are replaced by the restarted flow's.
            self.ledger.forget_flow(&flow.name);
            match self.prepare_flow(flow.clone(), start).await {
                Ok(ready) => prepared.push(ready),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        let live: Vec<String> = self
            .flows
            .keys()
            .cloned()
            .chain(prepared.iter().map(|p| p.config.name.clone()))
            .collect();
        self.ledger.retain_flows(&live);
        if let Err(error) = self.persist_start() {
            tracing::error!(%error, "cannot record the reloaded flows' starting points; will retry with the next checkpoint");
        }
        for flow in prepared {
            self.launch(flow);
        }
        self.stop_background().await;
        let (background_stop, _) = watch::channel(false);
        self.background_stop = background_stop;
        self.start_background();
        tracing::info!(flows = self.flows.len(), "config reloaded");
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
