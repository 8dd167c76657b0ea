// figment::Jail closures return figment::Error by the crate's design; its size is not ours to shrink.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

const VALID: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://localhost:8080"

[database]
url = "sqlite://data/pforte.db"

[dev]
simulators = true

[keys]
master_key = "file:data/master.key"
"#;

fn load_in_jail(jail: &mut Jail, contents: &str) -> Result<Settings, Problems> {
    jail.create_file("pforte.toml", contents).map_err(|e| {
        let mut p = Problems::default();
        p.push("jail", "", e.to_string());
        p
    })?;
    Settings::load(Some(Path::new("pforte.toml")))
}

// Loads a configuration with dev.simulators on, which only a build with the simulators accepts.
#[cfg(feature = "simulators")]
#[test]
fn valid_file_loads_with_defaults_for_optional_keys() {
    Jail::expect_with(|jail| {
        let settings = load_in_jail(jail, VALID).map_err(|p| p.to_string())?;
        assert_eq!(settings.server.listen.port(), 8080);
        assert_eq!(settings.registry.clients, PathBuf::from("config/clients"));
        assert_eq!(settings.log.format, LogFormat::Human);
        assert_eq!(settings.issuer(), "http://localhost:8080");
        Ok(())
    });
}

#[test]
fn unknown_key_names_file_and_key() {
    Jail::expect_with(|jail| {
        let text = VALID.replace("[dev]", "[dev]\nsimulatorz = true");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        let message = problems.to_string();
        assert!(message.contains("pforte.toml"), "{message}");
        assert!(message.contains("simulatorz"), "{message}");
        Ok(())
    });
}

#[test]
fn wrong_type_names_file_key_and_reason() {
    Jail::expect_with(|jail| {
        let text = VALID.replace("listen = \"127.0.0.1:8080\"", "listen = 8080");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        let problem = &problems.0[0];
        assert!(problem.source.ends_with("pforte.toml"), "{problem}");
        assert_eq!(problem.key, "server.listen");
        assert!(problem.reason.contains("invalid type"), "{problem}");
        Ok(())
    });
}

#[test]
fn missing_required_value_is_named() {
    Jail::expect_with(|jail| {
        let text = VALID.replace("url = \"sqlite://data/pforte.db\"", "");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert_eq!(problems.0[0].key, "database.url");
        assert!(problems.0[0].reason.contains("missing"));
        Ok(())
    });
}

// Loads a configuration with dev.simulators on, which only a build with the simulators accepts.
#[cfg(feature = "simulators")]
#[test]
fn environment_overrides_the_file_and_bad_values_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("PFORTE__SERVER__LISTEN", "127.0.0.1:9999");
        jail.set_env("PFORTE__DATABASE__URL", "postgres://u:secretpw@127.0.0.1/pforte");
        let settings = load_in_jail(jail, VALID).map_err(|p| p.to_string())?;
        assert_eq!(settings.server.listen.port(), 9999);
        assert_eq!(settings.database.url.backend(), Backend::Postgres);
        assert!(!format!("{:?}", settings.database).contains("secretpw"));

        jail.set_env("PFORTE__SERVER__LISTEN", "not an address");
        let problems = Settings::load(Some(Path::new("pforte.toml"))).err().ok_or("expected an error")?;
        assert!(problems.0[0].source.contains("PFORTE__SERVER__LISTEN"), "{problems}");
        Ok(())
    });
}

#[test]
fn missing_config_file_is_reported() {
    let problems = Settings::load(Some(Path::new("/nonexistent/pforte.toml"))).err();
    assert!(problems.is_some_and(|p| p.to_string().contains("configuration file not found")));
}

/// A build without the cargo feature `simulators` has none to run, and says so instead of starting
/// without them.
#[test]
fn simulators_are_refused_by_a_build_without_them() {
    Jail::expect_with(|jail| {
        let refusal = load_in_jail(jail, VALID).err().filter(|p| p.0.iter().any(|p| p.key == "dev.simulators"));
        if cfg!(feature = "simulators") {
            assert!(refusal.is_none(), "{refusal:?}");
        } else {
            let refusal = refusal.ok_or("expected dev.simulators to be refused")?;
            assert!(refusal.to_string().contains("feature `simulators`"), "{refusal}");
        }
        Ok(())
    });
}

#[test]
fn simulators_are_refused_on_a_public_address() {
    Jail::expect_with(|jail| {
        let text = VALID.replace("http://localhost:8080", "https://pforte.example.de");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert!(problems.0.iter().any(|p| p.key == "dev.simulators"), "{problems}");
        Ok(())
    });
}

#[test]
fn plain_http_is_refused_for_a_public_address_and_plain_secrets_outside_development() {
    Jail::expect_with(|jail| {
        let text = VALID
            .replace("http://localhost:8080", "http://pforte.example.de")
            .replace("simulators = true", "simulators = false")
            .replace("file:data/master.key", "plain:abc");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert!(problems.0.iter().any(|p| p.key == "server.public_url"), "{problems}");
        assert!(problems.0.iter().any(|p| p.key == "keys.master_key"), "{problems}");
        Ok(())
    });
}

#[test]
fn unsupported_database_scheme_is_refused() {
    Jail::expect_with(|jail| {
        let text = VALID.replace("sqlite://data/pforte.db", "mysql://localhost/pforte");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert_eq!(problems.0[0].key, "database.url");
        Ok(())
    });
}

// Loads a configuration with dev.simulators on, which only a build with the simulators accepts.
#[cfg(feature = "simulators")]
#[test]
fn shipped_default_configuration_is_valid() {
    let settings = Settings::load(Some(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))));
    assert!(settings.is_ok(), "{:?}", settings.err());
}

#[test]
fn production_example_is_valid_and_keeps_simulators_off() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.example.toml");
    let settings = Settings::load(Some(Path::new(path)));
    let settings = match settings {
        Ok(settings) => settings,
        Err(problems) => panic!("{problems}"),
    };
    assert!(!settings.dev.simulators);
    assert_eq!(settings.database.url.backend(), Backend::Postgres);
    assert!(matches!(settings.keys.master_key, SecretRef::Env(_)));
    assert_eq!(settings.log.format, LogFormat::Json);
}

// Loads a configuration with dev.simulators on, which only a build with the simulators accepts.
#[cfg(feature = "simulators")]
#[test]
fn payment_lifetimes_default_to_two_hours_and_a_one_to_fifteen_minute_backoff() {
    Jail::expect_with(|jail| {
        let settings = load_in_jail(jail, VALID).map_err(|p| p.to_string())?;
        assert_eq!(settings.payments.lifetime_secs, 7200);
        assert_eq!(settings.payments.status_check_first_secs, 60);
        assert_eq!(settings.payments.status_check_max_secs, 900);
        let text = format!(
            "{VALID}\n[payments]\nlifetime_secs = 600\nstatus_check_first_secs = 5\nstatus_check_max_secs = 40\n"
        );
        let settings = load_in_jail(jail, &text).map_err(|p| p.to_string())?;
        assert_eq!(settings.payments.lifetime_secs, 600);
        assert_eq!(settings.payments.status_check_first_secs, 5);
        assert_eq!(settings.payments.status_check_max_secs, 40);
        Ok(())
    });
}

#[test]
fn a_zero_payment_lifetime_is_a_problem_naming_the_key() {
    Jail::expect_with(|jail| {
        let text = format!("{VALID}\n[payments]\nlifetime_secs = 0\n");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert!(problems.0.iter().any(|p| p.key == "payments.lifetime_secs" && p.reason.contains("greater than zero")));
        Ok(())
    });
}

#[test]
fn a_negative_status_check_pause_is_a_problem_naming_the_key() {
    Jail::expect_with(|jail| {
        let text = format!("{VALID}\n[payments]\nstatus_check_first_secs = -5\n");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert_eq!(problems.0[0].key, "payments.status_check_first_secs", "{problems}");
        Ok(())
    });
}

#[test]
fn a_zero_status_check_pause_from_the_environment_is_a_problem_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("PFORTE__PAYMENTS__STATUS_CHECK_MAX_SECS", "0");
        let problems = load_in_jail(jail, VALID).err().ok_or("expected an error")?;
        assert!(problems.0.iter().any(|p| p.key == "payments.status_check_max_secs"), "{problems}");
        Ok(())
    });
}

#[test]
fn a_longest_pause_below_the_first_is_a_problem() {
    Jail::expect_with(|jail| {
        let text = format!("{VALID}\n[payments]\nstatus_check_first_secs = 120\nstatus_check_max_secs = 60\n");
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        assert!(problems.0.iter().any(|p| p.key == "payments.status_check_max_secs"), "{problems}");
        Ok(())
    });
}

#[test]
fn only_localhost_and_loopback_addresses_count_as_loopback() {
    let loopback = |text: &str| Url::parse(text).map(|url| is_loopback_url(&url)).unwrap_or(false);
    for yes in ["http://localhost:8080/", "http://LOCALHOST/", "http://127.3.2.1/", "http://[::1]:9000/"] {
        assert!(loopback(yes), "{yes}");
    }
    // A name under .localhost is resolved by whatever resolver the machine has; it is not loopback.
    for no in ["http://app.localhost/", "http://localhost.example.org/", "http://10.0.0.1/", "http://[::2]/"] {
        assert!(!loopback(no), "{no}");
    }
}

#[cfg(feature = "simulators")]
#[test]
fn rate_limits_and_trusted_proxies_load_and_a_zero_budget_is_named() {
    Jail::expect_with(|jail| {
        let text = VALID.replace(
            "public_url = \"http://localhost:8080\"",
            "public_url = \"http://localhost:8080\"\ntrusted_proxies = [\"10.0.0.5\", \"::1\"]",
        ) + "\n[rate_limit]\nfinance = { requests = 5, period_secs = 10 }\n";
        let settings = load_in_jail(jail, &text).map_err(|p| p.to_string())?;
        assert_eq!(settings.server.trusted_proxies.len(), 2);
        assert_eq!(settings.rate_limit.finance, Quota { requests: 5, period_secs: 10 });
        assert_eq!(settings.rate_limit.oauth, Quota { requests: 120, period_secs: 60 }, "the default");
        let zero = text.replace("requests = 5, period_secs = 10", "requests = 0, period_secs = 100000");
        let message = load_in_jail(jail, &zero).err().ok_or("expected an error")?.to_string();
        assert!(message.contains("rate_limit.finance.requests"), "{message}");
        assert!(message.contains("rate_limit.finance.period_secs"), "{message}");
        let address = text.replace("\"10.0.0.5\"", "\"proxy.example\"");
        let message = load_in_jail(jail, &address).err().ok_or("expected an error")?.to_string();
        assert!(message.contains("trusted_proxies"), "{message}");
        Ok(())
    });
}

#[test]
fn a_key_published_ahead_for_less_than_the_jwks_cache_lifetime_is_refused() {
    Jail::expect_with(|jail| {
        let text = VALID.replace(
            "master_key = \"file:data/master.key\"",
            "master_key = \"file:data/master.key\"\npublish_ahead_secs = 300",
        );
        let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
        let problem = problems.0.iter().find(|p| p.key == "keys.publish_ahead_secs").ok_or("no problem for the key")?;
        assert!(problem.to_string().contains("330"), "names the floor (max-age 300 + refresh 30): {problem}");
        // With the schedule off the key does not matter.
        let off = text.replace("publish_ahead_secs = 300", "publish_ahead_secs = 300\nrotate_after_days = 0");
        if let Err(problems) = load_in_jail(jail, &off) {
            assert!(!problems.0.iter().any(|p| p.key == "keys.publish_ahead_secs"), "{problems}");
        }
        Ok(())
    });
}

#[cfg(feature = "simulators")]
#[test]
fn traces_are_off_by_default_and_an_endpoint_loads_from_the_environment() {
    Jail::expect_with(|jail| {
        let settings = load_in_jail(jail, VALID).map_err(|p| p.to_string())?;
        assert!(settings.traces.otlp_endpoint.is_none());
        assert!((settings.traces.sample_ratio - 1.0).abs() < f64::EPSILON);
        jail.set_env("PFORTE__TRACES__OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let settings = load_in_jail(jail, VALID).map_err(|p| p.to_string())?;
        assert_eq!(settings.traces.otlp_endpoint.map(String::from).as_deref(), Some("http://127.0.0.1:4318/"));
        Ok(())
    });
}

#[test]
fn a_trace_endpoint_that_is_not_plain_http_and_a_ratio_above_one_are_problems() {
    for (endpoint, ratio, reason) in [
        ("ftp://collector:4318", "1.0", "http or https"),
        ("https://user:secret@collector:4318", "1.0", "user or password"),
        ("http://collector:4318?token=x", "1.0", "query"),
        ("http://collector:4318", "1.5", "between 0.0 and 1.0"),
    ] {
        Jail::expect_with(|jail| {
            let text = format!("{VALID}\n[traces]\notlp_endpoint = \"{endpoint}\"\nsample_ratio = {ratio}\n");
            let problems = load_in_jail(jail, &text).err().ok_or("expected an error")?;
            assert!(
                problems.0.iter().any(|p| p.key.starts_with("traces.") && p.reason.contains(reason)),
                "{endpoint} {ratio}: {problems}"
            );
            Ok(())
        });
    }
}
