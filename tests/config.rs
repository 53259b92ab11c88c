//! Configuration precedence (defaults < file < environment < flags) and
//! errors that name the setting, through the real binary.

use std::process::{Command, Output};

fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run switchboard")
}

fn effective(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = switchboard(args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn value_of(config: &str, key: &str) -> String {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} missing from:\n{config}"))
        .to_string()
}

#[test]
fn defaults_run_without_setup() {
    let c = effective(&["config"], &[]);
    assert_eq!(value_of(&c, "http_listen"), "\"127.0.0.1:8080\"");
    assert_eq!(value_of(&c, "sip_listen"), "\"0.0.0.0:5060\"");
    assert_eq!(value_of(&c, "database_url"), "\"sqlite://switchboard.db\"");
    assert_eq!(value_of(&c, "digest_algorithms"), "[\"MD5\",\"SHA-256\"]");
    assert_eq!(value_of(&c, "digest_challenges"), "\"first\"");
    assert_eq!(value_of(&c, "sip_threads"), "1");
    assert_eq!(value_of(&c, "max_server_transactions"), "1000000");
}

#[test]
fn max_server_transactions_by_environment_and_its_bounds() {
    let c = effective(
        &["config"],
        &[("SWITCHBOARD_MAX_SERVER_TRANSACTIONS", "250000")],
    );
    assert_eq!(value_of(&c, "max_server_transactions"), "250000");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "max_server_transactions = 5000\n").unwrap();
    let c = effective(&["config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(value_of(&c, "max_server_transactions"), "5000");
    for bad in ["0", "100000001", "many"] {
        let out = switchboard(&["config", "--max-server-transactions", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("max_server_transactions") && err.contains("from 1 to 100000000"),
            "{err}"
        );
    }
}

#[test]
fn sip_threads_by_flag_and_its_bounds() {
    let c = effective(&["config", "--sip-threads", "4"], &[]);
    assert_eq!(value_of(&c, "sip_threads"), "4");
    for bad in ["0", "257", "two"] {
        let out = switchboard(&["config"], &[("SWITCHBOARD_SIP_THREADS", bad)]);
        assert_eq!(out.status.code(), Some(2), "{bad} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("sip_threads")
                && err.contains("SWITCHBOARD_SIP_THREADS")
                && err.contains("from 1 to 256"),
            "{err}"
        );
    }
}

#[test]
fn file_then_environment_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(
        &file,
        "http_listen = \"127.0.0.1:1111\"\ndomain = \"file.example\"\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let env = [("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:2222")];

    let c = effective(&["config", "--config", f], &[]);
    assert_eq!(value_of(&c, "http_listen"), "\"127.0.0.1:1111\"");
    assert_eq!(value_of(&c, "domain"), "\"file.example\"");
    assert_eq!(value_of(&c, "digest_algorithms"), "[\"SHA-256\",\"MD5\"]");

    let c = effective(&["config", "--config", f], &env);
    assert_eq!(value_of(&c, "http_listen"), "\"127.0.0.1:2222\"");
    assert_eq!(
        value_of(&c, "domain"),
        "\"file.example\"",
        "untouched settings keep the file's value"
    );

    let c = effective(
        &["config", "--config", f, "--http-listen", "127.0.0.1:3333"],
        &env,
    );
    assert_eq!(value_of(&c, "http_listen"), "\"127.0.0.1:3333\"");

    // The file may also be named by environment.
    let c = effective(&["config"], &[("SWITCHBOARD_CONFIG", f)]);
    assert_eq!(value_of(&c, "domain"), "\"file.example\"");
}

#[test]
fn secrets_are_redacted() {
    let c = effective(
        &["config"],
        &[(
            "SWITCHBOARD_JWT_SECRET",
            "0123456789abcdef0123456789abcdef-secret",
        )],
    );
    assert_eq!(value_of(&c, "jwt_secret"), "\"<redacted>\"");
    assert!(!c.contains("0123456789abcdef"));
}

#[test]
fn errors_name_the_setting_and_its_source() {
    let out = switchboard(&["config"], &[("SWITCHBOARD_HTTP_LISTEN", "localhost")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http_listen")
            && err.contains("SWITCHBOARD_HTTP_LISTEN")
            && err.contains("'localhost'"),
        "{err}"
    );

    let out = switchboard(&["config", "--digest-algorithms", "MD5,SHA-512"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("digest_algorithms")
            && err.contains("--digest-algorithms")
            && err.contains("SHA-512"),
        "{err}"
    );

    let out = switchboard(&["config"], &[("SWITCHBOARD_DIGEST_CHALLENGES", "some")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("digest_challenges")
            && err.contains("SWITCHBOARD_DIGEST_CHALLENGES")
            && err.contains("'some'"),
        "{err}"
    );

    let out = switchboard(&["config"], &[("DATABASE_URL", "mysql://x")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database_url") && err.contains("DATABASE_URL"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "http_lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = switchboard(&["config", "--config", file.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("http_lisen"),
        "{err}"
    );

    let out = switchboard(
        &["config", "--config", "/nonexistent/switchboard.toml"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/switchboard.toml"), "{err}");
}
