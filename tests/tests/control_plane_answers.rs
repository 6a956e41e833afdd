//! Tests of how the control-plane benchmark reads the receivers' answers (the benchmark
//! itself runs without the test harness, so its own tests live here).

#[path = "../benches/control_plane/answers.rs"]
mod answers;

use std::net::IpAddr;

use answers::{accepted_of, imported};

#[test]
fn accepted_is_read_from_the_daemons_json_lines() {
    // The CLI's own golden output of `show neighbors --json` (and routes after it).
    let golden = include_str!("../../bgp-ctl/tests/golden/json-lines.txt");
    let leaf1: IpAddr = "192.168.1.1".parse().unwrap();
    let leaf2: IpAddr = "192.168.2.1".parse().unwrap();
    let rack: IpAddr = "fd00:192:168:1::7".parse().unwrap();
    assert_eq!(accepted_of(golden, leaf1).unwrap(), 1200);
    assert_eq!(accepted_of(golden, leaf2).unwrap(), 0);
    assert_eq!(accepted_of(golden, rack).unwrap(), 1200);
    let err = accepted_of(golden, "10.9.9.9".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("no neighbor 10.9.9.9"), "{err:#}");
}

#[test]
fn other_api_versions_and_garbage_are_refused() {
    let v2 = r#"{"version":2,"type":"neighbor","name":"f","address":"10.255.0.1","remote_asn":1,"state":"Established","since_secs":1,"received":5,"accepted":5,"advertised":0,"last_error":null}"#;
    let err = accepted_of(v2, "10.255.0.1".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("API version 2"), "{err:#}");
    assert!(accepted_of("Established 5", "10.255.0.1".parse().unwrap()).is_err());
}

#[test]
fn birds_imported_count_is_read_from_show_protocols_all() {
    let up = "\
Name       Proto      Table      State  Since         Info
feeder     BGP        ---        up     12:31:50.123  Established
  BGP state:          Established
  Channel ipv4
State:          UP
Routes:         1000000 imported, 0 exported, 1000000 preferred
";
    assert_eq!(imported(up).unwrap(), 1_000_000);
    let starting = "feeder     BGP        ---        start  12:31:50.123  Passive\n";
    assert_eq!(imported(starting).unwrap(), 0);
    assert!(imported("    Routes:         many imported, 0 exported\n").is_err());
    assert!(imported("    Routes:         0 exported\n").is_err());
}
