//! One way to read a setting: the flag if given, else the environment variable, else a typed default.
//!
//! Every parse failure names the flag or variable and the bad value on one line.

use std::{net::SocketAddr, time::Duration};

/// A setting that was given but could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name} {value:?}: {reason}")]
pub struct SettingError {
    /// The flag (`--listen`) or environment variable (`LISTEN_ADDR`) the value came from.
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Reads environment variables; a function so that tests never need `std::env::set_var`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment; unset and non-UTF-8 variables both read as absent.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads a setting from `flag` (named `flag_name`), else from the variable `var`; `None` when
/// neither is set. Empty environment variables count as unset, as Kubernetes manifests often
/// carry `value: ""`.
pub fn read<T>(
    flag: Option<&str>,
    flag_name: &str,
    env: EnvLookup<'_>,
    var: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingError> {
    let (name, value) = match (flag, env(var).filter(|v| !v.is_empty())) {
        (Some(v), _) => (flag_name, v.to_owned()),
        (None, Some(v)) => (var, v),
        (None, None) => return Ok(None),
    };
    parse(&value).map(Some).map_err(|reason| SettingError {
        name: name.to_owned(),
        value,
        reason,
    })
}

/// Parses a duration such as `10s`, `500ms` or `1m30s`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("expected a duration such as 10s or 500ms".into());
    }
    humantime::parse_duration(s).map_err(|_| "expected a duration such as 10s or 500ms".into())
}

/// Parses `IP:PORT`.
pub fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected an address such as 0.0.0.0:50051 or 127.0.0.1:9090".into())
}

/// Parses a whole number of at least 1.
pub fn positive(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err("expected a whole number of at least 1".into()),
        Ok(n) => Ok(n),
    }
}

/// The host name, as the fallback identity of a server or client outside Kubernetes.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The identity of this pod or process: `POD_NAME`, then `NAME`, then the host name.
pub fn pod_name(env: EnvLookup<'_>) -> String {
    ["POD_NAME", "NAME"]
        .iter()
        .find_map(|var| env(var).filter(|v| !v.is_empty()))
        .unwrap_or_else(host_name)
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
    fn a_flag_wins_over_the_environment() {
        let env = env_of(&[("MAX_AGE", "20s")]);
        let got = read(Some("5s"), "--max-age", &env, "MAX_AGE", duration).unwrap();
        assert_eq!(got, Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_environment_is_read_when_no_flag_is_given() {
        let env = env_of(&[("MAX_AGE", "1m30s")]);
        let got = read(None, "--max-age", &env, "MAX_AGE", duration).unwrap();
        assert_eq!(got, Some(Duration::from_secs(90)));
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let env = env_of(&[("MAX_AGE", "")]);
        assert_eq!(
            read(None, "--max-age", &env, "MAX_AGE", duration).unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        let env = env_of(&[("MAX_AGE", "soon")]);
        let err = read(None, "--max-age", &env, "MAX_AGE", duration).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid MAX_AGE "soon": expected a duration such as 10s or 500ms"#
        );
    }

    #[test]
    fn a_bad_flag_names_the_flag() {
        let env = env_of(&[]);
        let err = read(Some("x"), "--listen", &env, "LISTEN_ADDR", socket_addr).unwrap_err();
        assert!(
            err.to_string().starts_with(r#"invalid --listen "x": "#),
            "{err}"
        );
    }

    #[test]
    fn the_pod_name_falls_back_to_name_then_the_host_name() {
        assert_eq!(pod_name(&env_of(&[("POD_NAME", "a"), ("NAME", "b")])), "a");
        assert_eq!(pod_name(&env_of(&[("NAME", "b")])), "b");
        assert_eq!(pod_name(&env_of(&[])), host_name());
    }

    #[test]
    fn zero_is_not_a_positive_count() {
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert_eq!(positive("3"), Ok(3));
    }
}
