//! The configuration file: a good node config loads; each mistake in a table of bad
//! configs is reported with its line, its field and the reason, all at once.

use bgp_ctl::config::{self, ConfigError};

const NODE: &str = include_str!("data/node.toml");

fn errors(text: &str) -> Vec<ConfigError> {
    match config::parse_str(text, "test.toml") {
        Ok(l) => panic!("expected errors, got a config: {:?}", l.config),
        Err(e) => e.errors,
    }
}

#[test]
fn the_reference_node_config_loads_without_warnings() {
    let loaded = config::parse_str(NODE, "node.toml").expect("node.toml loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(*c.asn.get_ref(), 4200000001);
    assert_eq!(c.peer.len(), 2);
    assert_eq!(c.peer[1].name.get_ref(), "leaf2");
    assert_eq!(c.timers.get_ref().hold(), 9);
    assert_eq!(c.timers.get_ref().keepalive(), 3);
    assert_eq!(c.listen.port, 179);
    assert_eq!(c.policies.get_ref()["fabric"].terms.len(), 1);
}

/// (what is changed, the replacement config text, expected line, field, words in reason)
#[test]
fn each_mistake_names_its_line_and_field() {
    let cases: &[(&str, String, usize, &str, &str)] = &[
        (
            "asn is a string",
            NODE.replace("asn = 4200000001", "asn = \"x\""),
            3,
            "asn",
            "invalid type",
        ),
        (
            "unknown key in a peer",
            NODE.replace("bfd = true\nmax-prefix = { limit = 10000 }\n\n[[peer]]", "bfd = true\nhold-tme = 3\nmax-prefix = { limit = 10000 }\n\n[[peer]]"),
            35,
            "peer[0].hold-tme",
            "unknown field `hold-tme`",
        ),
        (
            "bad address",
            NODE.replace("192.168.2.1", "192.168.2.300"),
            39,
            "peer[1].address",
            "invalid IP address",
        ),
        (
            "policy reference to nothing",
            NODE.replace("import = \"fabric\"\nexport = \"fabric\"\nbfd = true\nmax-prefix = { limit = 10000 }\n", "import = \"fabrik\"\nexport = \"fabric\"\nbfd = true\nmax-prefix = { limit = 10000 }\n"),
            32,
            "peer[0].import",
            "no policy named fabrik",
        ),
        (
            "hold time 2",
            NODE.replace("hold = 9", "hold = 2"),
            16,
            "timers.hold",
            "2: must be 0 or at least 3",
        ),
        (
            "max-paths above the group size",
            NODE.replace("max-paths = 16", "max-paths = 17"),
            13,
            "multipath.max-paths",
            "1 to 16",
        ),
        (
            "prefix list unknown",
            NODE.replace("prefix-list = \"pods\"", "prefix-list = \"pod\""),
            22,
            "policies.fabric",
            "prefix list `pod` is not defined",
        ),
        (
            "bad prefix list entry",
            NODE.replace("10.244.0.0/16 le 32", "10.244.0.0/16 le 33"),
            20,
            "prefix-lists.pods",
            "length must be 0 to 32",
        ),
        (
            "duplicate peer address",
            NODE.replace("192.168.2.1", "192.168.1.1"),
            39,
            "peer[1].address",
            "another peer has address",
        ),
        (
            "range on a peer",
            NODE.replace("remote-asn = 65002", "remote-asn = 65002\nrange = \"10.0.0.0/8\""),
            41,
            "peer[1].range",
            "belongs to [[dynamic-neighbors]]",
        ),
        (
            "syntax error",
            NODE.replace("mode = \"driver\"", "mode = driver"),
            7,
            "dataplane.mode",
            "string values must be quoted",
        ),
        (
            "bad attach mode",
            NODE.replace("mode = \"driver\"", "mode = \"native\""),
            7,
            "dataplane.mode",
            "unknown variant `native`",
        ),
        (
            "missing required key",
            NODE.replace("remote-asn = 65001\n", ""),
            29,
            "peer[0].name",
            "`remote-asn` is required",
        ),
    ];
    for (what, text, line, field, reason) in cases {
        let errs = errors(text);
        let hit = errs
            .iter()
            .find(|e| e.line == *line && e.field == *field && e.reason.contains(reason));
        assert!(
            hit.is_some(),
            "{what}: expected line {line}, field {field:?}, reason containing {reason:?}; got {errs:#?}"
        );
    }
}

#[test]
fn mistakes_in_different_sections_are_all_reported_at_once() {
    let text = NODE
        .replace("remote-asn = 65001", "remote-asn = \"65001\"")
        .replace("192.168.2.1", "not-an-ip")
        .replace("max-paths = 16", "max-paths = \"many\"");
    let errs = errors(&text);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "multipath.max-paths",
        "peer[0].remote-asn",
        "peer[1].address",
    ] {
        assert!(fields.contains(&want), "{want} missing from {errs:#?}");
    }
    let rendered = config::parse_str(&text, "node.toml")
        .unwrap_err()
        .to_string();
    assert!(rendered.starts_with("node.toml: 3 errors"), "{rendered}");
}

#[test]
fn an_ebgp_peer_without_policy_gets_the_rfc_8212_warning() {
    let text = NODE.replacen("import = \"fabric\"\n", "", 1);
    let loaded = config::parse_str(&text, "node.toml").expect("loads");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].reason.contains("RFC 8212"));
    assert_eq!(loaded.warnings[0].field, "peer[0].name");
}

#[test]
fn type_errors_and_validation_errors_come_together() {
    let text = NODE
        .replace("hold = 9", "hold = 2")
        .replace("192.168.2.1", "x");
    let errs = errors(&text);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (16, "timers.hold"),
            (17, "timers.keepalive"),
            (39, "peer[1].address")
        ],
        "{errs:#?}"
    );
}
