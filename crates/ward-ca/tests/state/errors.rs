//! What an operator reads when the CA cannot use its PostgreSQL database: the server's own
//! message with its SQLSTATE, where the CA tried to connect, the transport's or TLS's reason,
//! and never a prefix said twice.

use ward_ca::config::state::StateConfig;
use ward_ca::state::Store;
use ward_e2e::postgres::Postgres;

/// The `state:` config for `url`, with `password` in a private file and `ca_file` if given.
fn config(dir: &std::path::Path, url: &str, password: &str, ca_file: Option<&str>) -> StateConfig {
    let pw = dir.join(format!("pw-{}", password.len()));
    std::fs::write(&pw, password).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("kek"), [7u8; 32]).unwrap();
    std::fs::set_permissions(
        dir.join("kek"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ca = ca_file
        .map(|f| format!("    ca_file: {f}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "trust_domain: example.org\nlisten: 127.0.0.1:0\nstate:\n  postgres:\n    url: {url}\n    password_file: {}\n    kek_file: kek\n{ca}",
        pw.display()
    );
    ward_ca::config::CaConfig::parse("ca.yaml", &yaml, dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .state
}

async fn refusal(config: &StateConfig) -> String {
    Store::open(config).await.unwrap_err().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_say_what_is_wrong_and_where() {
    let pg = Postgres::start();
    let db = pg.create_database("errors");
    let dir = tempfile::tempdir().unwrap();
    let port = pg.port();
    let at = format!("127.0.0.1:{port}");

    let wrong_password = refusal(&config(dir.path(), &pg.url(&db), "not-the-password", None)).await;
    let wrong_user = refusal(&config(
        dir.path(),
        &format!("postgres://nobody@127.0.0.1:{port}/{db}"),
        "ward-test-password",
        None,
    ))
    .await;
    let wrong_db = refusal(&config(
        dir.path(),
        &pg.url("nosuchdb"),
        "ward-test-password",
        None,
    ))
    .await;
    for (what, said, code) in [
        ("password", &wrong_password, "28P01"),
        ("user", &wrong_user, "28P01"),
        ("database", &wrong_db, "3D000"),
    ] {
        assert!(said.contains(code), "wrong {what}: {said}");
        assert!(said.contains(&at), "wrong {what}: {said}");
        assert!(!said.contains("db error"), "wrong {what}: {said}");
    }
    assert!(
        wrong_password.contains("password authentication failed"),
        "{wrong_password}"
    );
    assert!(
        wrong_db.contains("\"nosuchdb\" does not exist"),
        "{wrong_db}"
    );

    // Nothing listens on the port: the address and the kernel's reason.
    let closed = ward_e2e::kit::free_port();
    let refused = refusal(&config(
        dir.path(),
        &format!("postgres://ward@127.0.0.1:{closed}/{db}"),
        "ward-test-password",
        None,
    ))
    .await;
    assert!(
        refused.contains(&format!("127.0.0.1:{closed}")),
        "{refused}"
    );
    assert!(
        refused.to_lowercase().contains("connection refused"),
        "{refused}"
    );

    // TLS asked of a server that has none: the TLS reason.
    let roots = dir.path().join("roots.pem");
    let test_ca = ward_e2e::TestCa::new("example.org");
    std::fs::copy(test_ca.path().join("bundle.pem"), &roots).unwrap();
    let tls = refusal(&config(
        dir.path(),
        &pg.url(&db),
        "ward-test-password",
        Some(roots.to_str().unwrap()),
    ))
    .await;
    assert!(tls.contains("(TLS)") && tls.contains("TLS"), "{tls}");
    assert!(tls.contains("does not support TLS"), "{tls}");

    for said in [&wrong_password, &wrong_user, &wrong_db, &refused, &tls] {
        assert_eq!(said.matches("state database").count(), 1, "{said}");
    }
}

/// `ward-ca <args>` through the CLI library: (succeeded, what it printed and said).
fn ward_ca(args: &[&str]) -> (bool, String) {
    let mut argv = vec!["ward-ca"];
    argv.extend(args);
    let cli = <ward_ca::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = ward_ca::cli::run(cli, &mut out, &mut err);
    let mut said = String::from_utf8_lossy(&out).to_string() + &String::from_utf8_lossy(&err);
    if let Err(e) = &result {
        said.push_str(&e.to_string());
    }
    (result.is_ok(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connect_reaches_the_database_and_opens_the_ca() {
    let pg = Postgres::start();
    let db = pg.create_database("check");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, state: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("trust_domain: example.org\nlisten: 127.0.0.1:0\n{state}"),
        )
        .unwrap();
        p.to_str().unwrap().to_owned()
    };
    let good = write("ca.yaml", &pg.state_yaml(&db));
    let (ok, said) = tokio::task::spawn_blocking({
        let good = good.clone();
        move || ward_ca(&["check", "--config", &good, "--connect"])
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    assert!(said.contains("no schema yet"), "{said}");
    let (ok, said) = tokio::task::spawn_blocking({
        let good = good.clone();
        move || ward_ca(&["init", "--config", &good])
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    let (ok, said) = tokio::task::spawn_blocking({
        let good = good.clone();
        move || ward_ca(&["check", "--config", &good, "--connect"])
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "ok: state postgres://ward@127.0.0.1:{}/{db}: reached; schema version",
            pg.port()
        )),
        "{said}"
    );
    assert!(said.contains("(current)"), "{said}");
    assert!(
        said.contains("ok: CA version 1 in the database opened with"),
        "{said}"
    );

    // Another KEK cannot open it, and says so.
    let other = dir.path().join("other-kek");
    std::fs::write(&other, [9u8; 32]).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let wrong = write(
        "wrong.yaml",
        &pg.state_yaml(&db)
            .replace(pg.kek_file().to_str().unwrap(), other.to_str().unwrap()),
    );
    let (ok, said) =
        tokio::task::spawn_blocking(move || ward_ca(&["check", "--config", &wrong, "--connect"]))
            .await
            .unwrap();
    assert!(!ok, "{said}");
    assert!(said.contains("sealed under key-encryption key"), "{said}");
}
