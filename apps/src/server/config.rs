//! All of the server's configuration: every variable a named constant, every default typed.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::settings::{self, EnvLookup, SettingError};

pub const POD_NAME: &str = "POD_NAME";
pub const VERSION: &str = "VERSION";
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
pub const METRICS_ADDR: &str = "METRICS_ADDR";
pub const MAX_CONNECTION_AGE: &str = "MAX_CONNECTION_AGE";
pub const MAX_CONNECTION_AGE_GRACE: &str = "MAX_CONNECTION_AGE_GRACE";
pub const RESPONSE_DELAY: &str = "RESPONSE_DELAY";
pub const DRAIN_TIMEOUT: &str = "DRAIN_TIMEOUT";

pub const DEFAULT_VERSION: &str = "v1";
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 50051);
/// Metrics listen on the gRPC listener's IP at this port unless `METRICS_ADDR` says otherwise.
pub const DEFAULT_METRICS_PORT: u16 = 9090;
pub const DEFAULT_RESPONSE_DELAY: Duration = Duration::ZERO;
/// Below Kubernetes' default termination grace period (30s), so a drain finishes before SIGKILL.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Command-line flags; each overrides the variable of the same meaning.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "hello-server",
    version,
    about = "Answers hello.v1.Greeter, naming the server that handled each call"
)]
pub struct Flags {
    /// Server identity in replies [env: POD_NAME, then NAME; default: host name]
    #[arg(long)]
    pub server_id: Option<String>,
    /// Version label in replies [env: VERSION; default: v1]
    #[arg(long)]
    pub server_version: Option<String>,
    /// gRPC listen address [env: LISTEN_ADDR; default: 0.0.0.0:50051]
    #[arg(long)]
    pub listen: Option<String>,
    /// Prometheus /metrics address, or "off" [env: METRICS_ADDR; default: the listen IP, port 9090]
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Send GOAWAY to each connection after this age, e.g. 10s [env: MAX_CONNECTION_AGE; default: unlimited]
    #[arg(long)]
    pub max_connection_age: Option<String>,
    /// Close a connection this long after its GOAWAY, e.g. 20s [env: MAX_CONNECTION_AGE_GRACE; default: unlimited]
    #[arg(long)]
    pub max_connection_age_grace: Option<String>,
    /// Wait this long before answering each call [env: RESPONSE_DELAY; default: 0s]
    #[arg(long)]
    pub response_delay: Option<String>,
    /// On SIGTERM, wait at most this long for in-flight calls [env: DRAIN_TIMEOUT; default: 25s]
    #[arg(long)]
    pub drain_timeout: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server_id: String,
    pub version: String,
    pub listen: SocketAddr,
    /// `None`: no metrics endpoint.
    pub metrics: Option<SocketAddr>,
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Option<Duration>,
    pub response_delay: Duration,
    pub drain_timeout: Duration,
}

impl Config {
    /// Merges flags, environment and defaults; the first bad value is the error.
    pub fn new(flags: &Flags, env: EnvLookup<'_>) -> Result<Config, SettingError> {
        let listen = settings::read(
            flags.listen.as_deref(),
            "--listen",
            env,
            LISTEN_ADDR,
            settings::socket_addr,
        )?
        .unwrap_or(DEFAULT_LISTEN);
        let metrics = settings::read(
            flags.metrics_addr.as_deref(),
            "--metrics-addr",
            env,
            METRICS_ADDR,
            metrics_addr,
        )?
        .unwrap_or(Some(SocketAddr::new(listen.ip(), DEFAULT_METRICS_PORT)));
        let duration = |flag: &Option<String>, name: &str, var: &str| {
            settings::read(flag.as_deref(), name, env, var, settings::duration)
        };
        let text = |s: &str| -> Result<String, String> { Ok(s.to_owned()) };
        Ok(Config {
            server_id: match &flags.server_id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => settings::pod_name(env),
            },
            version: settings::read(
                flags.server_version.as_deref(),
                "--server-version",
                env,
                VERSION,
                text,
            )?
            .unwrap_or_else(|| DEFAULT_VERSION.to_owned()),
            listen,
            metrics,
            max_connection_age: duration(
                &flags.max_connection_age,
                "--max-connection-age",
                MAX_CONNECTION_AGE,
            )?,
            max_connection_age_grace: duration(
                &flags.max_connection_age_grace,
                "--max-connection-age-grace",
                MAX_CONNECTION_AGE_GRACE,
            )?,
            response_delay: duration(&flags.response_delay, "--response-delay", RESPONSE_DELAY)?
                .unwrap_or(DEFAULT_RESPONSE_DELAY),
            drain_timeout: duration(&flags.drain_timeout, "--drain-timeout", DRAIN_TIMEOUT)?
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        })
    }
}

fn metrics_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    settings::socket_addr(s)
        .map(Some)
        .map_err(|reason| format!("{reason}, or off"))
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |d: Option<Duration>| {
            d.map_or("unlimited".to_owned(), |d| {
                humantime::format_duration(d).to_string()
            })
        };
        write!(
            f,
            "server_id={} version={} listen={} metrics={} max_connection_age={} max_connection_age_grace={} response_delay={} drain_timeout={}",
            self.server_id,
            self.version,
            self.listen,
            self.metrics.map_or("off".to_owned(), |a| a.to_string()),
            opt(self.max_connection_age),
            opt(self.max_connection_age_grace),
            humantime::format_duration(self.response_delay),
            humantime::format_duration(self.drain_timeout),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_flags_are_a_valid_command_line() {
        use clap::CommandFactory;
        Flags::command().debug_assert();
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = Config::new(&Flags::default(), &env_of(&[("POD_NAME", "server-0")])).unwrap();
        assert_eq!(c.server_id, "server-0");
        assert_eq!(c.version, "v1");
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.metrics, Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(c.max_connection_age, None);
        assert_eq!(c.response_delay, Duration::ZERO);
    }

    #[test]
    fn metrics_follow_the_listen_ip_unless_set() {
        let c = Config::new(
            &Flags::default(),
            &env_of(&[("LISTEN_ADDR", "127.0.0.7:50051")]),
        )
        .unwrap();
        assert_eq!(c.metrics, Some("127.0.0.7:9090".parse().unwrap()));
        let c = Config::new(&Flags::default(), &env_of(&[("METRICS_ADDR", "off")])).unwrap();
        assert_eq!(c.metrics, None);
    }

    #[test]
    fn the_seed_s_max_age_settings_parse() {
        let env = env_of(&[
            ("MAX_CONNECTION_AGE", "10s"),
            ("MAX_CONNECTION_AGE_GRACE", "20s"),
            ("VERSION", "v2"),
        ]);
        let c = Config::new(&Flags::default(), &env).unwrap();
        assert_eq!(c.max_connection_age, Some(Duration::from_secs(10)));
        assert_eq!(c.max_connection_age_grace, Some(Duration::from_secs(20)));
        assert_eq!(c.version, "v2");
    }

    #[test]
    fn a_bad_duration_is_one_line_naming_the_variable() {
        let err = Config::new(
            &Flags::default(),
            &env_of(&[("RESPONSE_DELAY", "1 parsec")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid RESPONSE_DELAY "1 parsec": expected a duration such as 10s or 500ms"#
        );
    }
}
