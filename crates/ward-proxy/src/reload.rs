//! The reload task: policy and identity files polled every `reload_interval`, and at once on
//! SIGHUP (or `RunningProxy::reload`). A bad version is refused whole and the previous one
//! stays in force.

use std::sync::Arc;

use tokio::sync::Notify;
use ward_tls::files::{ContentDigest, ContentWatch};
use ward_tls::CertStore;
use ward_yaml::YamlError;

use crate::policy_store::{self, PolicyStore};
use crate::svid_source::IdentitySource;
use crate::{Config, Metrics};

/// Polls the policy and identity files every `reload_interval`, and at once when notified.
/// A file that fails leaves the previous version in force; the failure is logged (with
/// file:line:column for YAML) and counted once per distinct content.
pub(crate) async fn reload_loop(
    config: Config,
    mut source: IdentitySource,
    store: Arc<CertStore>,
    policy: PolicyStore,
    metrics: Arc<Metrics>,
    trigger: Arc<Notify>,
    initial_policy: String,
) {
    let listeners = config.policy_listeners();
    let mut watch = ContentWatch::seen(ContentDigest::of(&[initial_policy.as_bytes()]));
    // Everything was just loaded by `start`; the first check is one interval from now.
    let first = tokio::time::Instant::now() + config.reload_interval;
    let mut ticker = tokio::time::interval_at(first, config.reload_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = ticker.tick() => false,
            () = trigger.notified() => true,
        };
        // Off the async workers: a slow or hung file system must not stall connections.
        let path = config.policy.clone();
        let read = tokio::task::spawn_blocking(move || ward_yaml::read_file(&path))
            .await
            .unwrap_or_else(|e| {
                Err(YamlError::whole_file(
                    &config.policy.display().to_string(),
                    format!("cannot read: {e}"),
                ))
            });
        match read {
            Ok(text) => {
                if watch.changed(ContentDigest::of(&[text.as_bytes()])) || forced {
                    match policy_store::compile(&config.policy, &text, &listeners) {
                        Ok(new) => {
                            tracing::info!(version = %new.hash, rules = new.policy.rules.len(), mode = %new.policy.mode, "policy loaded");
                            policy.replace(new);
                            metrics.reload("policy", true);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "policy reload failed; keeping the previous policy");
                            metrics.reload("policy", false);
                        }
                    }
                }
            }
            // The file could not be opened (mid-swap, say): report it only when asked to.
            Err(e) if e.message.starts_with("cannot read") => {
                if forced {
                    tracing::error!(path = %config.policy.display(), error = %e, "cannot read policy; keeping the previous policy");
                    metrics.reload("policy", false);
                }
            }
            // Read, but unusable as text (too large, not UTF-8): once per distinct failure.
            Err(e) => {
                if watch.changed(ContentDigest::of(&[e.to_string().as_bytes()])) || forced {
                    tracing::error!(error = %e, "policy reload failed; keeping the previous policy");
                    metrics.reload("policy", false);
                }
            }
        }
        match source.refresh(&store, forced).await {
            Ok(None) => {}
            Ok(Some(id)) => {
                metrics.identity_expiry.set(id.leaf().not_after);
                metrics.reload("identity", true);
            }
            Err(e) => {
                if store.current().is_some() {
                    tracing::error!(error = %e, "identity reload failed; keeping the previous identity");
                } else {
                    tracing::error!(error = %e, "no identity yet; not ready until one is obtained");
                }
                metrics.reload("identity", false);
            }
        }
    }
}
