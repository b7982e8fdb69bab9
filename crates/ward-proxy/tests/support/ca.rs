//! A real ward-ca daemon in-process for sidecar tests: started on port 0 over a test CA
//! directory, with its state in its own temporary directory, plus join tokens, revocations
//! and the config of a sidecar whose identity comes from it.

use std::path::{Path, PathBuf};

use ward_ca::authority::records::Revocation;
use ward_ca::state::sqlite::{self, queries};
use ward_ca::state::unix_now;

use super::{Pki, ALLOW_FRONTEND};

/// A running CA and the directory holding its config and state.
pub struct Ca {
    /// The CA directory it signs from.
    pub ca_dir: PathBuf,
    /// Holds `ca.yaml` and `state.db`.
    pub dir: tempfile::TempDir,
    pub running: ward_ca::server::RunningCa,
}

/// Starts a CA over the CA directory of `ca`; `extra` is appended to its config.
pub async fn start_ca(ca: &ward_e2e::TestCa, extra: &str) -> Ca {
    start_ca_on(ca, "state: state.db\n", extra).await
}

/// Starts a CA over the CA directory of `ca` with `state` (a `state:` YAML block): several
/// started on one PostgreSQL database are replicas of one CA (the first stores `ca` there).
pub async fn start_ca_on(ca: &ward_e2e::TestCa, state: &str, extra: &str) -> Ca {
    let dir = tempfile::tempdir().unwrap();
    // With PostgreSQL the replicas keep the CA in the database; the first one puts the test
    // CA there.
    let ca_dir = ca.ca_dir_yaml(state);
    let text = format!(
        "trust_domain: example.org\n{ca_dir}listen: \"127.0.0.1:0\"\n{state}dns_names: [localhost]\n{extra}"
    );
    std::fs::write(dir.path().join("ca.yaml"), &text).unwrap();
    let config = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir.path()).unwrap();
    ca.store_for(&config).await;
    let running = ward_ca::server::start(config).await.unwrap();
    Ca {
        ca_dir: ca.path(),
        dir,
        running,
    }
}

/// Stores a join token for `id` in the CA state under `dir` and returns it.
pub fn insert_token(dir: &Path, id: &str) -> String {
    let t = ward_ca::authority::tokens::generate().unwrap();
    let conn = sqlite::open(&dir.join("state.db")).unwrap();
    queries::insert_token(&conn, &t.record(id, unix_now(), 600)).unwrap();
    t.secret
}

impl Ca {
    pub fn token(&self, id: &str) -> String {
        insert_token(self.dir.path(), id)
    }

    /// Stores a join token for `id` through the daemon's own state (any engine).
    pub async fn token_in_state(&self, id: &str) -> String {
        ward_e2e::token_in_state(&self.running.service.state, id, 600).await
    }

    /// `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.running.addr.port())
    }

    pub fn bundle(&self) -> PathBuf {
        self.ca_dir.join("bundle.pem")
    }

    /// Runs `ward-ca <args> --config ca.yaml` through the CLI library, as an operator would.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let config = self.dir.path().join("ca.yaml");
        let mut argv = vec!["ward-ca"];
        argv.extend(args);
        argv.extend(["--config", config.to_str().unwrap()]);
        let cli =
            <ward_ca::cli::Cli as clap::Parser>::try_parse_from(argv).map_err(|e| e.to_string())?;
        let (mut out, mut status) = (Vec::new(), Vec::new());
        ward_ca::cli::run(cli, &mut out, &mut status).map_err(|e| e.to_string())?;
        // Reports (`rotate status`) go to standard output, summaries to the status stream.
        out.extend_from_slice(&status);
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    pub fn revoke_id(&self, id: &str) {
        let conn = sqlite::open(&self.dir.path().join("state.db")).unwrap();
        queries::insert_revocation(
            &conn,
            &Revocation {
                spiffe_id: Some(id.into()),
                serial: None,
                reason: "test".into(),
                revoked_at: unix_now() + 1,
            },
        )
        .unwrap();
    }
}

/// A proxy config whose identity comes from `url` with `token`; `listeners` is the
/// inbound/outbound YAML.
pub fn ca_config(
    pki: &Pki,
    name: &str,
    url: &str,
    bundle: &Path,
    token: &str,
    listeners: &str,
) -> ward_proxy::Config {
    ca_config_urls(pki, name, &[url], bundle, token, listeners)
}

/// The same with several CA URLs (replicas), tried in turn.
pub fn ca_config_urls(
    pki: &Pki,
    name: &str,
    urls: &[&str],
    bundle: &Path,
    token: &str,
    listeners: &str,
) -> ward_proxy::Config {
    let url = match urls {
        [one] => format!("\"{one}\""),
        many => format!(
            "[{}]",
            many.iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let token_file = pki.file(&format!("{name}.token"), token);
    let rules = if listeners.contains("name: api") {
        ALLOW_FRONTEND
    } else {
        "rules: []\n"
    };
    let policy = pki.file(&format!("{name}-policy.yaml"), rules);
    let text = format!(
        "trust_domain: example.org\nidentity:\n  ca: {{ url: {url}, bundle: {}, token_file: {} }}\n\
         policy: {}\n{listeners}admin: \"127.0.0.1:0\"\nreload_interval: 1h\n",
        bundle.display(), token_file.display(), policy.display()
    );
    let path = pki.file(&format!("{name}.yaml"), &text);
    ward_proxy::Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}
