//! The whole command line of `cargo xtask`, in one place.

use std::{str::FromStr, time::Duration};

use clap::{
    Args, Parser, Subcommand, ValueEnum,
    builder::{PossibleValuesParser, TypedValueParser},
};

use crate::{
    harness::scenario::{self, Mesh, Scenario},
    project::Profile,
};

/// Exit code for a bad command line, as clap uses.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The grpc-mesh-lab tasks",
    disable_version_flag = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub subcommand: XtaskCmd,
}

#[derive(Debug, Subcommand)]
pub enum XtaskCmd {
    /// Runs N hello-servers behind one DNS name on this machine and sends them RPCs: how gRPC
    /// balances before any mesh exists
    Hello(Hello),
    /// Runs one of the seed's demos and measures where every RPC lands
    Demo(Demo),
    /// Your own servers, routes and workload on the local twin
    Experiment(Experiment),
    /// Finds Envoy (ENVOY_BIN, PATH, .tools/) or installs the pinned version into .tools/
    Envoy,
    /// Creates the kind cluster, builds and loads the app images, installs the Gateway API CRDs
    Up(Up),
    /// `up`, then Istio (minimal profile) with sidecars only in pods that opt in
    UpIstio(UpIstio),
    /// Deletes the harness's kind cluster, and nothing else
    Down(Down),
    /// The cluster, the pinned versions, the tools, and what the demos have deployed
    Status(Status),
    /// Measures the mesh's cost on the local twin: throughput, latency, Envoy CPU and memory, route
    /// propagation, and hello-server against a bare tonic server
    Bench(Bench),
    /// Prints the objects a scenario applies to a cluster, as YAML for kubectl
    Manifests(Manifests),
}

#[derive(Debug, Args)]
pub struct Up {
    /// The kind cluster (its kube context is kind-<name>)
    #[arg(long, default_value = crate::cluster::versions::CLUSTER_NAME)]
    pub cluster: String,
    /// The kind node image [default: the one pinned in kind-config.yaml]
    #[arg(long)]
    pub node_image: Option<String>,
    /// Print every command and object instead of running and applying them
    #[arg(long)]
    pub dry_run: bool,
    /// Install into this existing cluster's kube context instead of creating the kind cluster
    /// (no kind create, no kind load: the images must reach its nodes some other way)
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpIstio {
    #[command(flatten)]
    pub up: Up,
    /// The Istio release to install
    #[arg(long, default_value = crate::cluster::versions::ISTIO_VERSION)]
    pub istio_version: String,
    /// Install Istio's ambient mode (istiod, istio-cni, ztunnel: mesh/istio/istio-ambient.yaml) instead
    /// of sidecars only; sidecars stay available to pods that opt in. Installing one after the other
    /// switches the cluster between the two
    #[arg(long)]
    pub ambient: bool,
}

#[derive(Debug, Args)]
pub struct Down {
    /// The kind cluster to delete
    #[arg(long, default_value = crate::cluster::versions::CLUSTER_NAME)]
    pub cluster: String,
    /// Print the command instead of running it
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct Manifests {
    /// The scenario, as named in the README's demo table
    #[arg(value_parser = builtin_scenario())]
    pub scenario: Scenario,
}

#[derive(Debug, Args)]
pub struct Demo {
    /// The scenario, as named in the README's demo table
    #[arg(value_parser = builtin_scenario())]
    pub scenario: Scenario,
    /// Run on the local twin of the mesh: processes on loopback addresses and a real Envoy, no cluster
    #[arg(long)]
    pub local: bool,
    /// Print one JSON document on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// Build and run the apps' debug binaries (quicker to build; the tests use it)
    #[arg(long)]
    pub debug: bool,
    /// Print what the demo would apply and do on the cluster, step by step
    #[arg(long, conflicts_with = "local")]
    pub dry_run: bool,
    /// Act on this kube context instead of the harness's own kind-<cluster>
    #[arg(long)]
    pub context: Option<String>,
    /// The harness's kind cluster (its kube context is kind-<name>)
    #[arg(long, default_value = crate::cluster::versions::CLUSTER_NAME)]
    pub cluster: String,
    /// Leave the scenario's namespace on the cluster at the end, to look around with kubectl
    #[arg(long, conflicts_with = "local")]
    pub keep: bool,
    /// Write the HTML report into this directory [default: target/reports/<scenario>-<time>]
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// Measure each phase for this long instead of the scenario's own time (after the phase's
    /// changes, or after their end in a phase under load)
    #[arg(long, value_name = "D", value_parser = positive_duration)]
    pub duration: Option<Duration>,
}

impl Demo {
    /// The scenario to run, with `--duration` applied.
    pub fn scenario(&self) -> Scenario {
        match self.duration {
            Some(measure) => self.scenario.clone().measuring_each_phase_for(measure),
            None => self.scenario.clone(),
        }
    }
}

/// A built-in scenario by name: the names are the scenario table's own, and `--help` lists them.
fn builtin_scenario() -> impl TypedValueParser<Value = Scenario> {
    PossibleValuesParser::new(scenario::names()).try_map(|name| scenario::get(&name))
}

#[derive(Debug, Args)]
pub struct Status {
    /// The harness's kind cluster (its kube context is kind-<name>)
    #[arg(long, default_value = crate::cluster::versions::CLUSTER_NAME)]
    pub cluster: String,
    /// Look at this kube context instead of the harness's own kind-<cluster>
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct Experiment {
    /// Run on the local twin of the mesh
    #[arg(long)]
    pub local: bool,
    /// HTTPRoute/GRPCRoute YAML: a file, or a directory of *.yaml files
    #[arg(long)]
    pub routes: Option<std::path::PathBuf>,
    /// Server pods per version: each version gets its Service server-<version>; `server` selects all
    #[arg(long, default_value = "v1=3", value_parser = Servers::from_str)]
    pub servers: Servers,
    /// Method the client calls
    #[arg(long, value_enum, default_value_t = Method::SayHello)]
    pub method: Method,
    /// Metadata the client sends with every RPC, key=value (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Concurrent RPCs per round
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// Measure at least this many RPCs
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub rpcs: Option<u64>,
    /// Measure for this long [default: 3s]
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<Duration>,
    /// With the client's sidecar (on) or without (off: the client reaches the Service as exposed), or
    /// in Istio's ambient mode: ztunnel alone, or with a waypoint for `server`
    #[arg(long, value_enum, default_value_t = MeshSwitch::On)]
    pub mesh: MeshSwitch,
    /// How the Service `server` is exposed: one virtual IP (clusterip), or every pod address in DNS
    /// (headless; with the mesh on, Istio's sidecar passes each request through to the pod the client
    /// picked)
    #[arg(long, value_enum, default_value_t = Exposure::Clusterip)]
    pub exposure: Exposure,
    /// The client's load-balancing policy
    #[arg(long, value_enum, default_value_t = Lb::RoundRobin)]
    pub lb: Lb,
    /// Print one JSON document on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// Build and run the apps' debug binaries
    #[arg(long)]
    pub debug: bool,
    /// Write the HTML report into this directory [default: target/reports/experiment-<time>]
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Print one JSON document on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// A short run that checks the benchmark itself (seconds, not minutes); its numbers are rough
    #[arg(long)]
    pub quick: bool,
    /// Build and run debug binaries (quicker to build; the tests use it); the numbers mean little
    #[arg(long, hide = true)]
    pub debug: bool,
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("must be longer than 0s".to_owned()),
        d => Ok(d),
    }
}

#[derive(Debug, Args)]
pub struct Hello {
    /// How many servers ("pods") the name `server` resolves to
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub servers: u8,
    /// Rounds of RPCs the client sends, 10 concurrent RPCs in each
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// The client's load-balancing policy
    #[arg(long, value_enum, default_value_t = Lb::RoundRobin)]
    pub lb: Lb,
    /// How long each server waits before answering, e.g. 200ms
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub response_delay: Duration,
    /// Build and run the apps' debug binaries (quicker to build; the tests use it)
    #[arg(long)]
    pub debug: bool,
}

impl Hello {
    pub fn profile(&self) -> Profile {
        if self.debug {
            Profile::Debug
        } else {
            Profile::Release
        }
    }
}

/// How an experiment exposes the Service `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Exposure {
    /// One virtual IP, balanced per connection by kube-proxy
    Clusterip,
    /// Every pod address in DNS
    Headless,
}

impl From<Exposure> for crate::harness::scenario::Exposure {
    fn from(e: Exposure) -> Self {
        match e {
            Exposure::Clusterip => crate::harness::scenario::Exposure::ClusterIp,
            Exposure::Headless => crate::harness::scenario::Exposure::Headless,
        }
    }
}

/// Server pods per version (`--servers v1=3,v2=2`), in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers(pub Vec<(String, u32)>);

impl Servers {
    /// At most this many pods in all: the twin's room, with some to spare for a scale-up.
    pub const MAX_PODS: u32 = 50;
}

impl FromStr for Servers {
    type Err = String;

    fn from_str(spec: &str) -> Result<Servers, String> {
        let max = Servers::MAX_PODS;
        let mut out: Vec<(String, u32)> = Vec::new();
        for part in spec.split(',') {
            let (version, n) = part
                .split_once('=')
                .ok_or("expected VERSION=REPLICAS, e.g. v1=3,v2=2")?;
            let version = version.trim();
            let valid = !version.is_empty()
                && version.len() <= 20
                && version
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !version.starts_with('-')
                && !version.ends_with('-');
            if !valid {
                return Err(format!(
                    "{version:?} is not a valid version label (lowercase letters, digits and -)"
                ));
            }
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a replica count", n.trim()))?;
            if n == 0 || n > max {
                return Err(format!("{n} replicas: expected 1 to {max}"));
            }
            if out.iter().any(|(v, _)| v == version) {
                return Err(format!("version {version} is given twice"));
            }
            out.push((version.to_owned(), n));
        }
        let total: u32 = out.iter().map(|(_, n)| n).sum();
        if total > max {
            return Err(format!("{total} pods in all, at most {max}"));
        }
        Ok(Servers(out))
    }
}

/// The methods of the Hello service, spelled as hello-client's `--method` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    #[value(name = "SayHello")]
    SayHello,
    #[value(name = "SayHelloAgain")]
    SayHelloAgain,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SayHello => "SayHello",
            Method::SayHelloAgain => "SayHelloAgain",
        }
    }
}

/// `--mesh on|off|ztunnel|waypoint`: with the client's sidecar or without, or in Istio's ambient
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MeshSwitch {
    /// The client's sidecar
    On,
    /// No mesh
    Off,
    /// Ambient mode, ztunnel alone (L4, a pod per connection)
    Ztunnel,
    /// Ambient mode with a waypoint attached to the Service `server`
    Waypoint,
}

impl From<MeshSwitch> for Mesh {
    fn from(switch: MeshSwitch) -> Mesh {
        match switch {
            MeshSwitch::On => Mesh::Sidecar,
            MeshSwitch::Off => Mesh::Off,
            MeshSwitch::Ztunnel => Mesh::Ztunnel,
            MeshSwitch::Waypoint => Mesh::Waypoint,
        }
    }
}

/// The load-balancing policies of hello-client, spelled as its `--lb` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Lb {
    /// A connection to every address, RPCs in strict rotation
    RoundRobin,
    /// One connection, to the first address that accepts it
    PickFirst,
}

impl Lb {
    pub fn as_str(self) -> &'static str {
        match self {
            Lb::RoundRobin => "round_robin",
            Lb::PickFirst => "pick_first",
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| "expected a duration such as 0s, 200ms or 1s".to_owned())
}

impl Xtask {
    /// Parses the command line. Help prints and exits 0; anything wrong is one line on stderr
    /// and exit code 2.
    pub fn from_env_or_exit() -> Xtask {
        Xtask::try_parse().unwrap_or_else(|err| {
            use clap::error::ErrorKind::*;
            if matches!(
                err.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            eprintln!("xtask: error: {}", one_line(&err));
            std::process::exit(EXIT_USAGE.into())
        })
    }
}

/// A clap error on one line: its message and the possible values if it lists them, without
/// the `error: ` prefix, the tips and the usage.
pub fn one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect::<Vec<_>>()
        .join(" ");
    match line.strip_prefix("error: ") {
        Some(rest) => rest.to_owned(),
        None if line.is_empty() => "invalid arguments".to_owned(),
        None => line,
    }
}

#[cfg(test)]
mod tests;
