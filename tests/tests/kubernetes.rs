//! The Kubernetes example (deploy/kubernetes/): the manifests validate against the
//! Kubernetes schema (offline, with kubernetes-validate, which `cargo xtask setup`
//! installs), the DaemonSet has what the agent needs and nothing more than the systemd
//! unit grants, and the per-node rendering rule gives the documented values and a
//! configuration `bgp-ctl config check` accepts.

mod support;

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

fn manifest(name: &str) -> PathBuf {
    lab::dist::workspace_root()
        .join("deploy/kubernetes")
        .join(name)
}

fn validator() -> Result<PathBuf> {
    let v = lab::dist::kubernetes_validate();
    ensure!(
        v.exists(),
        "{} is missing: run `cargo xtask setup`",
        v.display()
    );
    Ok(v)
}

/// The venv's Python, which has PyYAML (a kubernetes-validate dependency).
fn python() -> Result<PathBuf> {
    Ok(validator()?.with_file_name("python3"))
}

/// The manifest's documents, as JSON.
fn load(name: &str) -> Result<Value> {
    let out = Command::new(python()?)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(manifest(name))
        .output()?;
    ensure!(
        out.status.success(),
        "parsing {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Value = serde_json::from_slice(&out.stdout)?;
    docs.get(0).cloned().context("no document")
}

#[test]
fn manifests_validate_against_the_kubernetes_schema() -> Result<()> {
    let v = validator()?;
    for name in ["daemonset.yaml", "configmap.yaml"] {
        let out = Command::new(&v)
            .args(["--strict", "-k", lab::dist::KUBERNETES_SCHEMA_VERSION])
            .arg(manifest(name))
            .output()?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {said}");
        assert!(said.contains("passed"), "{name}: {said}");
    }
    Ok(())
}

#[test]
fn the_validator_rejects_a_broken_daemonset() -> Result<()> {
    // The check above can fail: a wrong type and an unknown field are both refused.
    let v = validator()?;
    let good = std::fs::read_to_string(manifest("daemonset.yaml"))?;
    for bad in [
        good.replace("hostNetwork: true", "hostNetwork: \"yes\""),
        good.replace(
            "mountPropagation: HostToContainer",
            "mountPropagation: HostToContainer\n              propagation: both",
        ),
    ] {
        assert_ne!(bad, good);
        let file = tempfile::Builder::new().suffix(".yaml").tempfile()?;
        std::fs::write(file.path(), bad)?;
        let out = Command::new(&v)
            .args(["--strict", "-k", lab::dist::KUBERNETES_SCHEMA_VERSION])
            .arg(file.path())
            .output()?;
        assert!(!out.status.success(), "a broken manifest passed");
    }
    Ok(())
}

/// The capabilities of `CapabilityBoundingSet=` in the systemd unit, without `CAP_`.
fn unit_capabilities() -> Result<Vec<String>> {
    let unit =
        std::fs::read_to_string(lab::dist::workspace_root().join("packaging/bgp-ctl.service"))?;
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .context("no CapabilityBoundingSet= in the unit")?;
    let mut caps: Vec<String> = line
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    caps.sort();
    Ok(caps)
}

#[test]
fn the_daemonset_has_what_the_agent_needs() -> Result<()> {
    let ds = load("daemonset.yaml")?;
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let agent = pod["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "bgp-ctl"))
        .context("no bgp-ctl container")?;

    // Exactly the unit's capabilities, not privileged.
    let sc = &agent["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut caps: Vec<String> = sc["capabilities"]["add"]
        .as_array()
        .context("capabilities.add")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    caps.sort();
    assert_eq!(caps, unit_capabilities()?);

    // Liveness on /healthz at the configured HTTP address; readiness is `bgp-ctl
    // health`, whose one line naming each failing condition lands in the pod's events.
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(agent["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        agent["readinessProbe"]["exec"]["command"],
        serde_json::json!(["/usr/bin/bgp-ctl", "health"])
    );
    let cm = load("configmap.yaml")?;
    let template = cm["data"]["bgp-ctl.toml.in"]
        .as_str()
        .context("no template")?;
    for probe in ["livenessProbe", "startupProbe"] {
        let get = &agent[probe]["httpGet"];
        let addr = format!(
            "listen = \"{}:{}\"",
            get["host"].as_str().unwrap_or("?"),
            get["port"]
        );
        assert!(
            template.contains(&addr),
            "{probe} at {addr}, not in the config"
        );
    }

    // bpffs, the configuration and the control socket.
    let mounts: Vec<(&str, &str)> = agent["volumeMounts"]
        .as_array()
        .context("volumeMounts")?
        .iter()
        .filter_map(|m| Some((m["mountPath"].as_str()?, m["name"].as_str()?)))
        .collect();
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    for (path, kind) in [
        ("/sys/fs/bpf", "hostPath"),
        ("/etc/bgp-ctl", "emptyDir"),
        ("/run/bgp-ctl", "hostPath"),
    ] {
        let (_, name) = mounts
            .iter()
            .find(|(p, _)| *p == path)
            .with_context(|| format!("no mount at {path}"))?;
        assert!(!volume(name)[kind].is_null(), "{path} is a {kind}");
    }
    assert_eq!(volume("bpffs")["hostPath"]["path"], "/sys/fs/bpf");
    assert_eq!(volume("run")["hostPath"]["path"], "/run/bgp-ctl");
    let command: Vec<&str> = agent["command"]
        .as_array()
        .context("command")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        command,
        [
            "/usr/bin/bgp-ctl",
            "daemon",
            "--config",
            "/etc/bgp-ctl/bgp-ctl.toml"
        ]
    );
    Ok(())
}

/// Runs the ConfigMap's render.sh with `sh`, a fake `ip` that gives the uplinks the
/// addresses in `uplinks`, and `NODE_IP`; returns (success, rendered file, stderr).
fn render(node_ip: &str, uplinks: &[(&str, &str)]) -> Result<(bool, String, String)> {
    let cm = load("configmap.yaml")?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("render.sh");
    let template = dir.path().join("bgp-ctl.toml.in");
    std::fs::write(
        &script,
        cm["data"]["render.sh"].as_str().context("render.sh")?,
    )?;
    std::fs::write(
        &template,
        cm["data"]["bgp-ctl.toml.in"].as_str().context("template")?,
    )?;
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin)?;
    // `ip -4 -o addr show dev X` as iproute2 and busybox print it.
    let mut fake = String::from("#!/bin/sh\nfor dev; do :; done\ncase \"$dev\" in\n");
    for (dev, addr) in uplinks {
        fake.push_str(&format!(
            "{dev}) echo \"2: {dev}    inet {addr} brd 0.0.0.0 scope global {dev}\";;\n"
        ));
    }
    fake.push_str("esac\n");
    let ip = bin.join("ip");
    std::fs::write(&ip, fake)?;
    lab::run("chmod", &["+x", ip.to_str().context("path")?])?;
    let out_file = dir.path().join("bgp-ctl.toml");
    let out = Command::new("sh")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("NODE_IP", node_ip)
        .env("TEMPLATE", &template)
        .env("OUT", &out_file)
        .output()?;
    let rendered = std::fs::read_to_string(&out_file).unwrap_or_default();
    Ok((
        out.status.success(),
        rendered,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn per_node_values_follow_the_documented_rule() -> Result<()> {
    let uplinks = [("eth0", "192.168.1.11/24"), ("eth1", "192.168.2.11/24")];
    let (ok, toml, err) = render("192.168.1.11", &uplinks)?;
    assert!(ok, "{err}");
    // README: router id = node IP; ASN = 4200000000 + 256 * 1 + 11; leaves at .1.
    for line in [
        "router-id = \"192.168.1.11\"",
        "asn = 4200000267",
        "uplinks = [\"eth0\", \"eth1\"]",
        "address = \"192.168.1.1\"",
        "address = \"192.168.2.1\"",
    ] {
        assert!(
            toml.contains(line),
            "rendered config lacks `{line}`:\n{toml}"
        );
    }
    assert!(!toml.contains('@'), "placeholders left:\n{toml}");
    // The rendered file is a configuration the agent accepts.
    let file = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::fs::write(file.path(), &toml)?;
    let out = Command::new(support::bgp_ctl_bin()?)
        .args(["config", "check"])
        .arg(file.path())
        .output()?;
    assert!(
        out.status.success(),
        "bgp-ctl config check of the rendered config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The highest address of a /16 still gives a valid 4-octet private ASN.
    let (ok, toml, err) = render("10.0.255.254", &uplinks)?;
    assert!(ok, "{err}");
    assert!(toml.contains("asn = 4200065534"), "{toml}");
    Ok(())
}

#[test]
fn bad_node_values_stop_the_init_container_naming_them() -> Result<()> {
    let uplinks = [("eth0", "192.168.1.11/24"), ("eth1", "192.168.2.11/24")];
    for (node_ip, uplinks, expect) in [
        (
            "fd00::11",
            &uplinks[..],
            "node IP 'fd00::11' is not an IPv4 address",
        ),
        ("192.168.1", &uplinks[..], "is not an IPv4 address"),
        ("192.168.1.300", &uplinks[..], "is not an IPv4 address"),
        ("", &uplinks[..], "NODE_IP is not set"),
        (
            "192.168.1.11",
            &uplinks[..1],
            "uplink eth1 has no IPv4 address",
        ),
    ] {
        let (ok, toml, err) = render(node_ip, uplinks)?;
        if ok {
            bail!("{node_ip} {uplinks:?} rendered:\n{toml}");
        }
        assert!(err.contains(expect), "{node_ip}: `{err}` lacks `{expect}`");
        assert!(toml.is_empty(), "nothing written for {node_ip}");
    }
    Ok(())
}
