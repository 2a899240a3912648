//! The command line parses into its types, and refuses bad input in one line.

use clap::{CommandFactory, Parser};

use super::*;

fn parse(args: &[&str]) -> Result<Xtask, clap::Error> {
    Xtask::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
}

fn hello(args: &[&str]) -> Hello {
    match parse(&[&["hello"], args].concat()).unwrap().subcommand {
        XtaskCmd::Hello(hello) => hello,
        other => panic!("parsed as {other:?}"),
    }
}

fn experiment(args: &[&str]) -> Result<Experiment, String> {
    match parse(&[&["experiment"], args].concat()) {
        Ok(Xtask {
            subcommand: XtaskCmd::Experiment(e),
        }) => Ok(e),
        Ok(other) => panic!("parsed as {other:?}"),
        Err(err) => Err(one_line(&err)),
    }
}

#[test]
fn experiment_reads_the_exposure_and_the_client_s_policy() {
    let e = experiment(&["--local", "--exposure", "headless", "--lb", "pick_first"]).unwrap();
    assert_eq!((e.exposure, e.lb), (Exposure::Headless, Lb::PickFirst));
    assert_eq!(
        crate::harness::scenario::Exposure::from(e.exposure),
        crate::harness::scenario::Exposure::Headless
    );
    let e = experiment(&["--local", "--exposure", "clusterip"]).unwrap();
    assert_eq!(
        crate::harness::scenario::Exposure::from(e.exposure),
        crate::harness::scenario::Exposure::ClusterIp
    );
    assert_eq!(
        experiment(&["--exposure", "nodeport"]).unwrap_err(),
        "invalid value 'nodeport' for '--exposure <EXPOSURE>' [possible values: clusterip, headless]"
    );
}

#[test]
fn dry_run_belongs_to_the_cluster_and_cannot_go_with_local() {
    let err = parse(&["demo", "kill", "--local", "--dry-run"]).unwrap_err();
    assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
    assert_eq!(
        one_line(&err),
        "the argument '--local' cannot be used with '--dry-run'"
    );
}

#[test]
fn experiment_defaults_to_three_v1_pods_with_the_mesh_on() {
    let e = experiment(&["--local"]).unwrap();
    assert_eq!(
        (
            e.servers.0,
            Mesh::from(e.mesh),
            e.method.as_str(),
            e.concurrency
        ),
        (vec![("v1".to_owned(), 3)], Mesh::Sidecar, "SayHello", 10)
    );
    assert_eq!((e.exposure, e.lb), (Exposure::Clusterip, Lb::RoundRobin));
    assert_eq!((e.rpcs, e.duration), (None, None));
}

#[test]
fn experiment_rejects_bad_rates_durations_and_choices_in_one_line() {
    for (args, text) in [
        (&["--rpcs", "0"][..], "invalid value '0' for '--rpcs"),
        (&["--duration", "0s"][..], "must be longer than 0s"),
        (&["--duration", "soon"][..], "expected a duration"),
        (
            &["--mesh", "maybe"][..],
            "invalid value 'maybe' for '--mesh",
        ),
        (
            &["--method", "Hello"][..],
            "invalid value 'Hello' for '--method",
        ),
        (
            &["--concurrency", "0"][..],
            "invalid value '0' for '--concurrency",
        ),
        (
            &["--rpcs", "5", "--duration", "1s"][..],
            "cannot be used with",
        ),
    ] {
        let err = experiment(args).unwrap_err();
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn experiment_reads_servers_mesh_and_method_into_their_types() {
    let e = experiment(&[
        "--servers",
        "v1=3,v2=2",
        "--mesh",
        "off",
        "--method",
        "SayHelloAgain",
    ])
    .unwrap();
    assert_eq!(
        e.servers,
        Servers(vec![("v1".to_owned(), 3), ("v2".to_owned(), 2)])
    );
    assert_eq!(Mesh::from(e.mesh), Mesh::Off);
    assert_eq!(e.method.as_str(), "SayHelloAgain");
}

#[test]
fn bad_server_specs_are_one_line_usage_errors_that_say_why() {
    for (spec, why) in [
        ("v1", "expected VERSION=REPLICAS"),
        ("v1=0", "0 replicas"),
        ("v1=x", "\"x\" is not a replica count"),
        ("V1=2", "is not a valid version label"),
        ("v1=2,v1=3", "given twice"),
        ("v1=30,v2=30", "60 pods in all"),
        ("v1=-1", "is not a replica count"),
    ] {
        let err = parse(&["experiment", "--local", "--servers", spec]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE), "{spec}");
        let line = one_line(&err);
        assert!(
            line.starts_with(&format!(
                "invalid value '{spec}' for '--servers <SERVERS>': "
            )),
            "{spec}: {line}"
        );
        assert!(line.contains(why), "{spec}: {line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn every_method_is_spelled_as_hello_client_spells_it() {
    for method in Method::value_variants() {
        let name = method.to_possible_value().unwrap();
        assert_eq!(name.get_name(), method.as_str());
    }
}

fn demo(args: &[&str]) -> Demo {
    match parse(&[&["demo"], args].concat()).unwrap().subcommand {
        XtaskCmd::Demo(demo) => demo,
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn demo_and_manifests_take_every_built_in_scenario_and_help_lists_them_all() {
    for name in scenario::names() {
        assert_eq!(demo(&[name]).scenario.name, name);
        match parse(&["manifests", name]).unwrap().subcommand {
            XtaskCmd::Manifests(m) => assert_eq!(m.scenario.name, name),
            other => panic!("parsed as {other:?}"),
        }
    }
    let mut command = Xtask::command();
    for sub in ["demo", "manifests"] {
        let help = command
            .find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string();
        for name in scenario::names() {
            assert!(help.contains(name), "{sub} --help lacks {name}: {help}");
        }
    }
}

#[test]
fn an_unknown_scenario_is_a_one_line_usage_error_listing_the_known_ones() {
    let err = parse(&["demo", "nope", "--local"]).unwrap_err();
    assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
    assert_eq!(
        one_line(&err),
        format!(
            "invalid value 'nope' for '<SCENARIO>' [possible values: {}]",
            scenario::names().join(", ")
        )
    );
}

#[test]
fn demo_duration_sets_the_measuring_time_of_every_phase() {
    let d = demo(&["maxage", "--local", "--duration", "750ms"]);
    let own: Vec<_> = scenario::get("maxage")
        .unwrap()
        .phases
        .iter()
        .map(|p| p.measure)
        .collect();
    assert!(own.iter().any(|m| *m != own[0]), "{own:?}");
    let measured = d.scenario();
    assert_eq!(measured.phases.len(), own.len());
    assert!(
        measured
            .phases
            .iter()
            .all(|p| p.measure == Duration::from_millis(750)),
        "{:?}",
        measured.phases
    );
    assert_eq!(
        demo(&["maxage"])
            .scenario()
            .phases
            .iter()
            .map(|p| p.measure)
            .collect::<Vec<_>>(),
        own,
        "without --duration each phase keeps its own time"
    );
    let err = parse(&["demo", "maxage", "--duration", "0s"]).unwrap_err();
    assert!(one_line(&err).contains("must be longer than 0s"));
}

#[test]
fn the_flags_are_a_valid_command_line() {
    Xtask::command().debug_assert();
}

#[test]
fn hello_defaults_to_three_servers_five_rounds_round_robin_release() {
    let h = hello(&[]);
    assert_eq!(
        (h.servers, h.rounds, h.lb, h.response_delay, h.profile()),
        (3, 5, Lb::RoundRobin, Duration::ZERO, Profile::Release)
    );
}

#[test]
fn hello_reads_every_flag() {
    let h = hello(&[
        "--servers",
        "50",
        "--rounds",
        "2",
        "--lb",
        "pick_first",
        "--response-delay",
        "250ms",
        "--debug",
    ]);
    assert_eq!(
        (h.servers, h.rounds, h.lb, h.response_delay, h.profile()),
        (
            50,
            2,
            Lb::PickFirst,
            Duration::from_millis(250),
            Profile::Debug
        )
    );
}

#[test]
fn flag_errors_are_one_line_that_names_the_flag() {
    for (args, flag) in [
        (&["hello", "--servers", "0"][..], "--servers"),
        (&["hello", "--servers", "51"][..], "--servers"),
        (&["hello", "--rounds", "0"][..], "--rounds"),
        (&["hello", "--rounds", "many"][..], "--rounds"),
        (&["hello", "--lb", "random"][..], "--lb"),
        (
            &["hello", "--response-delay", "soon"][..],
            "--response-delay",
        ),
        (&["hello", "--nope"][..], "--nope"),
    ] {
        let err = parse(args).unwrap_err();
        let line = one_line(&err);
        assert!(!line.contains('\n'), "{args:?}: {line}");
        assert!(!line.starts_with("error:"), "{args:?}: {line}");
        assert!(line.contains(flag), "{args:?}: {line}");
    }
    let err = parse(&["hello", "--lb", "random"]).unwrap_err();
    assert_eq!(
        one_line(&err),
        "invalid value 'random' for '--lb <LB>' [possible values: round_robin, pick_first]"
    );
}

#[test]
fn every_lb_policy_is_spelled_as_hello_client_spells_it() {
    for lb in Lb::value_variants() {
        let name = lb.to_possible_value().unwrap();
        assert_eq!(name.get_name(), lb.as_str());
    }
}
