//! Settings: built-in defaults < TOML file (`--config`) < `SWITCHBOARD_*`
//! environment variables < command-line flags.
//!
//! Clap reads flags and environment variables together and tells us which of
//! the two a value came from, so every value arrives here as text and is
//! parsed once, by us, with an error that names the setting and its source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand};
use serde::Deserialize;

/// Digest algorithms a realm can offer (RFC 8760 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DigestAlgorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl FromStr for DigestAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MD5" => Ok(Self::Md5),
            "SHA-256" | "SHA256" => Ok(Self::Sha256),
            other => Err(format!(
                "unknown digest algorithm '{other}' (known: MD5, SHA-256)"
            )),
        }
    }
}

/// Which digest challenges a 401/407 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestChallenges {
    /// One, for the first algorithm of `digest_algorithms`. Clients that
    /// fail on a challenge they cannot answer instead of skipping it
    /// (baresip 1.0 and other libre-based ones end the call on a SHA-256
    /// challenge) get in; a client may still answer with any algorithm of
    /// the list.
    First,
    /// One per algorithm, in order (RFC 8760 §2.4).
    All,
}

impl FromStr for DigestChallenges {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "first" => Ok(Self::First),
            "all" => Ok(Self::All),
            other => Err(format!("'{other}' is not 'first' or 'all'")),
        }
    }
}

/// The effective configuration of one Switchboard process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub sip_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub database_url: String,
    /// SIP domain, also the digest realm.
    pub domain: String,
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<String>,
    pub admin_user: Option<String>,
    #[serde(serialize_with = "redact")]
    pub admin_password: Option<String>,
    pub digest_algorithms: Vec<DigestAlgorithm>,
    pub digest_challenges: DigestChallenges,
    /// Lifetime of the tokens handed out by `POST /v1/auth/token`.
    pub token_ttl_seconds: u64,
    /// Lifetime of digest nonces; an older one gets `stale=true`.
    pub nonce_ttl_seconds: u64,
    /// Seconds between OPTIONS probes of each app server.
    pub as_probe_interval_seconds: u64,
    /// Probes in a row without an answer before an app server is down.
    pub as_probe_failures: u64,
    /// Milliseconds an app server may stay silent before failover.
    pub as_response_timeout_ms: u64,
    /// Smallest Session-Expires accepted (RFC 4028 Min-SE; 90 there).
    pub session_min_se_seconds: u64,
    /// This node's name in sessions and CDRs (several nodes share one database).
    pub node_name: String,
    /// Where CDRs and charges wait while the database is unreachable.
    pub spool_dir: PathBuf,
    pub log_format: LogFormat,
    /// Worker threads of the SIP engine's own runtime (see `sip_threads`).
    pub sip_threads: u64,
    /// Server transactions held at once, finished ones included, beyond
    /// which new requests get a stateless 503 (see
    /// `LayerConfig::max_server_transactions`).
    pub max_server_transactions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("'{other}' is not a log format (text or json)")),
        }
    }
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sip_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://switchboard.db".into(),
            domain: "localhost".into(),
            jwt_secret: None,
            admin_user: None,
            admin_password: None,
            digest_algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
            digest_challenges: DigestChallenges::First,
            token_ttl_seconds: 3600,
            nonce_ttl_seconds: 300,
            as_probe_interval_seconds: 10,
            as_probe_failures: 3,
            as_response_timeout_ms: 5000,
            session_min_se_seconds: 90,
            node_name: default_node_name(),
            spool_dir: PathBuf::from("switchboard-spool"),
            log_format: LogFormat::Text,
            sip_threads: 1,
            max_server_transactions: 1_000_000,
        }
    }
}

fn default_node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{setting}` (from {source_name}): {problem}")]
    Invalid {
        setting: &'static str,
        source_name: String,
        problem: String,
    },
    #[error("config file {path}: {problem}")]
    File { path: PathBuf, problem: String },
}

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "SIP relay server with a REST control plane"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the SIP relay and the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
}

/// Every setting as a flag and an environment variable. Kept as text so that
/// parsing errors can name where the value came from.
#[derive(Debug, Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// SIP listen address (UDP and TCP).
    #[arg(long, global = true, env = "SWITCHBOARD_SIP_LISTEN")]
    pub sip_listen: Option<String>,
    /// HTTP listen address of the REST API.
    #[arg(long, global = true, env = "SWITCHBOARD_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// sqlite://path or postgres://… URL.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// SIP domain and digest realm.
    #[arg(long, global = true, env = "SWITCHBOARD_DOMAIN")]
    pub domain: Option<String>,
    /// Secret that signs API tokens (generated and stored in the database when unset).
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// First admin's username, used when no admin exists yet.
    #[arg(long, global = true, env = "SWITCHBOARD_ADMIN_USER")]
    pub admin_user: Option<String>,
    /// First admin's password, used when no admin exists yet.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Digest algorithms offered, in order (comma separated).
    #[arg(long, global = true, env = "SWITCHBOARD_DIGEST_ALGORITHMS")]
    pub digest_algorithms: Option<String>,
    /// Challenges per 401/407: `first` (the first algorithm only) or `all`
    /// (one per algorithm).
    #[arg(long, global = true, env = "SWITCHBOARD_DIGEST_CHALLENGES")]
    pub digest_challenges: Option<String>,
    /// Lifetime in seconds of tokens from POST /v1/auth/token.
    #[arg(long, global = true, env = "SWITCHBOARD_TOKEN_TTL_SECONDS")]
    pub token_ttl_seconds: Option<String>,
    /// Lifetime in seconds of SIP digest nonces.
    #[arg(long, global = true, env = "SWITCHBOARD_NONCE_TTL_SECONDS")]
    pub nonce_ttl_seconds: Option<String>,
    /// Seconds between OPTIONS probes of each app server.
    #[arg(long, global = true, env = "SWITCHBOARD_AS_PROBE_INTERVAL_SECONDS")]
    pub as_probe_interval_seconds: Option<String>,
    /// Unanswered probes in a row before an app server is marked down.
    #[arg(long, global = true, env = "SWITCHBOARD_AS_PROBE_FAILURES")]
    pub as_probe_failures: Option<String>,
    /// Milliseconds an app server may stay silent before the next is tried.
    #[arg(long, global = true, env = "SWITCHBOARD_AS_RESPONSE_TIMEOUT_MS")]
    pub as_response_timeout_ms: Option<String>,
    /// Smallest session timer interval accepted (RFC 4028 says 90).
    #[arg(long, global = true, env = "SWITCHBOARD_SESSION_MIN_SE_SECONDS")]
    pub session_min_se_seconds: Option<String>,
    /// Node name recorded in sessions and CDRs.
    #[arg(long, global = true, env = "SWITCHBOARD_NODE_NAME")]
    pub node_name: Option<String>,
    /// Directory of the spool where CDRs and charges wait while the
    /// database is unreachable.
    #[arg(long, global = true, env = "SWITCHBOARD_SPOOL_DIR")]
    pub spool_dir: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Worker threads of the SIP engine (HTTP and database work run on
    /// threads of their own).
    #[arg(long, global = true, env = "SWITCHBOARD_SIP_THREADS")]
    pub sip_threads: Option<String>,
    /// Server transactions held at once (finished ones absorb
    /// retransmissions for up to 64*T1, 32 s) before new requests get 503.
    #[arg(long, global = true, env = "SWITCHBOARD_MAX_SERVER_TRANSACTIONS")]
    pub max_server_transactions: Option<String>,
}

/// The TOML file: same names as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    sip_listen: Option<String>,
    http_listen: Option<String>,
    database_url: Option<String>,
    domain: Option<String>,
    jwt_secret: Option<String>,
    admin_user: Option<String>,
    admin_password: Option<String>,
    digest_algorithms: Option<DigestList>,
    digest_challenges: Option<String>,
    token_ttl_seconds: Option<u64>,
    nonce_ttl_seconds: Option<u64>,
    as_probe_interval_seconds: Option<u64>,
    as_probe_failures: Option<u64>,
    as_response_timeout_ms: Option<u64>,
    session_min_se_seconds: Option<u64>,
    node_name: Option<String>,
    spool_dir: Option<String>,
    log_format: Option<String>,
    sip_threads: Option<u64>,
    max_server_transactions: Option<u64>,
}

/// In TOML the algorithm list may be an array or a comma separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DigestList {
    List(Vec<String>),
    Text(String),
}

impl DigestList {
    fn joined(self) -> String {
        match self {
            Self::List(v) => v.join(","),
            Self::Text(s) => s,
        }
    }
}

/// A whole-number setting: name, environment variable, flag value, file
/// value, allowed range, and where the result goes.
type WholeNumber<'a> = (
    &'static str,
    &'static str,
    &'a Option<String>,
    Option<u64>,
    RangeInclusive<u64>,
    &'a mut u64,
);

/// One raw value and where it came from.
struct Raw {
    value: String,
    source_name: String,
}

impl Settings {
    /// Resolves the settings from parsed command-line matches, the process
    /// environment (through clap) and the optional TOML file.
    pub fn resolve(cli: &Cli, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let file = match &cli.overrides.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let file_label = cli
            .overrides
            .config
            .as_ref()
            .map(|p| format!("config file {}", p.display()))
            .unwrap_or_default();
        let o = &cli.overrides;
        let pick = |id: &str, env: &str, cli_value: &Option<String>, file_value: Option<String>| {
            pick(matches, id, env, cli_value, file_value, &file_label)
        };
        let mut s = Settings::default();
        if let Some(raw) = pick(
            "sip_listen",
            "SWITCHBOARD_SIP_LISTEN",
            &o.sip_listen,
            file.sip_listen,
        ) {
            s.sip_listen = parse_addr("sip_listen", raw)?;
        }
        if let Some(raw) = pick(
            "http_listen",
            "SWITCHBOARD_HTTP_LISTEN",
            &o.http_listen,
            file.http_listen,
        ) {
            s.http_listen = parse_addr("http_listen", raw)?;
        }
        if let Some(raw) = pick(
            "database_url",
            "DATABASE_URL",
            &o.database_url,
            file.database_url,
        ) {
            if !(raw.value.starts_with("sqlite:")
                || raw.value.starts_with("postgres://")
                || raw.value.starts_with("postgresql://"))
            {
                return Err(invalid(
                    "database_url",
                    raw.source_name,
                    "expected sqlite://PATH or postgres://… URL",
                ));
            }
            s.database_url = raw.value;
        }
        if let Some(raw) = pick("domain", "SWITCHBOARD_DOMAIN", &o.domain, file.domain) {
            if raw.value.is_empty() || raw.value.contains(|c: char| c.is_whitespace() || c == '"') {
                return Err(invalid(
                    "domain",
                    raw.source_name,
                    "must be a host name without spaces or quotes",
                ));
            }
            s.domain = raw.value;
        }
        if let Some(raw) = pick(
            "jwt_secret",
            "SWITCHBOARD_JWT_SECRET",
            &o.jwt_secret,
            file.jwt_secret,
        ) {
            if raw.value.len() < 32 {
                return Err(invalid(
                    "jwt_secret",
                    raw.source_name,
                    "must be at least 32 characters",
                ));
            }
            s.jwt_secret = Some(raw.value);
        }
        s.admin_user = pick(
            "admin_user",
            "SWITCHBOARD_ADMIN_USER",
            &o.admin_user,
            file.admin_user,
        )
        .map(|r| r.value);
        s.admin_password = pick(
            "admin_password",
            "SWITCHBOARD_ADMIN_PASSWORD",
            &o.admin_password,
            file.admin_password,
        )
        .map(|r| r.value);
        if let Some(raw) = pick(
            "digest_algorithms",
            "SWITCHBOARD_DIGEST_ALGORITHMS",
            &o.digest_algorithms,
            file.digest_algorithms.map(DigestList::joined),
        ) {
            s.digest_algorithms = parse_algorithms(raw)?;
        }
        if let Some(raw) = pick(
            "digest_challenges",
            "SWITCHBOARD_DIGEST_CHALLENGES",
            &o.digest_challenges,
            file.digest_challenges,
        ) {
            s.digest_challenges = raw
                .value
                .parse()
                .map_err(|e| invalid("digest_challenges", raw.source_name, e))?;
        }
        let numbers: [WholeNumber<'_>; 8] = [
            (
                "session_min_se_seconds",
                "SWITCHBOARD_SESSION_MIN_SE_SECONDS",
                &o.session_min_se_seconds,
                file.session_min_se_seconds,
                1..=86_400,
                &mut s.session_min_se_seconds,
            ),
            (
                "as_response_timeout_ms",
                "SWITCHBOARD_AS_RESPONSE_TIMEOUT_MS",
                &o.as_response_timeout_ms,
                file.as_response_timeout_ms,
                100..=60_000,
                &mut s.as_response_timeout_ms,
            ),
            (
                "token_ttl_seconds",
                "SWITCHBOARD_TOKEN_TTL_SECONDS",
                &o.token_ttl_seconds,
                file.token_ttl_seconds,
                60..=31_536_000,
                &mut s.token_ttl_seconds,
            ),
            (
                "nonce_ttl_seconds",
                "SWITCHBOARD_NONCE_TTL_SECONDS",
                &o.nonce_ttl_seconds,
                file.nonce_ttl_seconds,
                1..=86_400,
                &mut s.nonce_ttl_seconds,
            ),
            (
                "as_probe_interval_seconds",
                "SWITCHBOARD_AS_PROBE_INTERVAL_SECONDS",
                &o.as_probe_interval_seconds,
                file.as_probe_interval_seconds,
                1..=3_600,
                &mut s.as_probe_interval_seconds,
            ),
            (
                "as_probe_failures",
                "SWITCHBOARD_AS_PROBE_FAILURES",
                &o.as_probe_failures,
                file.as_probe_failures,
                1..=100,
                &mut s.as_probe_failures,
            ),
            (
                "sip_threads",
                "SWITCHBOARD_SIP_THREADS",
                &o.sip_threads,
                file.sip_threads,
                1..=256,
                &mut s.sip_threads,
            ),
            (
                "max_server_transactions",
                "SWITCHBOARD_MAX_SERVER_TRANSACTIONS",
                &o.max_server_transactions,
                file.max_server_transactions,
                1..=100_000_000,
                &mut s.max_server_transactions,
            ),
        ];
        for (setting, env, cli_value, file_value, range, target) in numbers {
            if let Some(raw) = pick(setting, env, cli_value, file_value.map(|v| v.to_string())) {
                *target = match raw.value.parse::<u64>() {
                    Ok(v) if range.contains(&v) => v,
                    _ => {
                        let problem = format!(
                            "must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        );
                        return Err(invalid(setting, raw.source_name, problem));
                    }
                };
            }
        }
        if let Some(raw) = pick(
            "node_name",
            "SWITCHBOARD_NODE_NAME",
            &o.node_name,
            file.node_name,
        ) {
            if raw.value.is_empty() {
                return Err(invalid("node_name", raw.source_name, "must not be empty"));
            }
            s.node_name = raw.value;
        }
        if let Some(raw) = pick(
            "spool_dir",
            "SWITCHBOARD_SPOOL_DIR",
            &o.spool_dir,
            file.spool_dir,
        ) {
            if raw.value.is_empty() {
                return Err(invalid("spool_dir", raw.source_name, "must not be empty"));
            }
            s.spool_dir = PathBuf::from(raw.value);
        }
        if let Some(raw) = pick(
            "log_format",
            "SWITCHBOARD_LOG_FORMAT",
            &o.log_format,
            file.log_format,
        ) {
            s.log_format = raw
                .value
                .parse()
                .map_err(|e| invalid("log_format", raw.source_name, e))?;
        }
        Ok(s)
    }

    /// The settings as TOML, secrets redacted (`switchboard config`).
    pub fn to_toml(&self) -> String {
        let mut map = BTreeMap::new();
        if let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(self) {
            for (k, v) in obj {
                map.insert(k, v);
            }
        }
        let mut out = String::new();
        for (k, v) in map {
            match v {
                serde_json::Value::Null => out.push_str(&format!("# {k} is not set\n")),
                other => out.push_str(&format!("{k} = {other}\n")),
            }
        }
        out
    }
}

fn read_file(path: &std::path::Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        problem: e.message().to_string(),
    })
}

fn pick(
    matches: &ArgMatches,
    id: &str,
    env: &str,
    cli_value: &Option<String>,
    file_value: Option<String>,
    file_label: &str,
) -> Option<Raw> {
    if let Some(value) = cli_value.clone() {
        let source_name = match matches.value_source(id) {
            Some(ValueSource::EnvVariable) => format!("environment variable {env}"),
            _ => format!("flag --{}", id.replace('_', "-")),
        };
        return Some(Raw { value, source_name });
    }
    file_value.map(|value| Raw {
        value,
        source_name: file_label.to_string(),
    })
}

fn invalid(setting: &'static str, source_name: String, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        source_name,
        problem: problem.into(),
    }
}

fn parse_addr(setting: &'static str, raw: Raw) -> Result<SocketAddr, ConfigError> {
    raw.value.parse().map_err(|_| {
        invalid(
            setting,
            raw.source_name,
            format!(
                "'{}' is not a socket address (expected e.g. 127.0.0.1:8080 or [::1]:5060)",
                raw.value
            ),
        )
    })
}

fn parse_algorithms(raw: Raw) -> Result<Vec<DigestAlgorithm>, ConfigError> {
    let mut out = Vec::new();
    for part in raw.value.split(',').filter(|p| !p.trim().is_empty()) {
        let alg: DigestAlgorithm = part
            .parse()
            .map_err(|e: String| invalid("digest_algorithms", raw.source_name.clone(), e))?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err(invalid(
            "digest_algorithms",
            raw.source_name,
            "must name at least one algorithm",
        ));
    }
    Ok(out)
}
