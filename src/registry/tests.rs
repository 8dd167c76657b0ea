use std::path::PathBuf;

use secrecy::ExposeSecret;
use tempfile::TempDir;

use super::*;
use crate::config::Problem;

const IDENTITY: &str = r#"
kind = "oidc"
display_name = "Test account"
account_type = "person"
issuer = "https://id.example.org"
client_id = "pforte"
scopes = ["openid", "profile"]

[client_auth]
method = "client_secret_basic"
secret = "plain:idp-secret"

[claims]
given_name = "given_name"

[levels]
L1 = "low"
L3 = "substantial"
"http://eidas.europa.eu/LoA/high" = "high"

[acr_values]
high = "http://eidas.europa.eu/LoA/high"
"#;

const PAYMENT: &str = r#"
kind = "xbezahldienste"
display_name = "Test payments"
base_url = "https://pay.example.org/api"

[auth]
method = "basic"
username = "pforte"
password = "plain:pay-secret"
"#;

const TENANT: &str = r#"
display_name = "Test town"

[payment]
provider = "pay"
"#;

const CLIENT: &str = r#"
display_name = "Test service"
redirect_uris = ["https://service.example.org/callback", "http://127.0.0.1:3000/cb"]
identity_providers = ["idp"]
scopes = ["openid", "email"]
originator_id = "svc"
tenants = ["12345678"]

[auth]
method = "client_secret_post"
secret = "plain:client-secret"
"#;

/// A registry tree in a temporary directory with one valid entity of each kind.
struct Tree {
    dir: TempDir,
}

impl Tree {
    fn new() -> std::io::Result<Tree> {
        let tree = Tree { dir: tempfile::tempdir()? };
        tree.write("providers/identity/idp.toml", IDENTITY)?;
        tree.write("providers/payment/pay.toml", PAYMENT)?;
        tree.write("tenants/12345678.toml", TENANT)?;
        tree.write("clients/service.toml", CLIENT)?;
        Ok(tree)
    }

    fn write(&self, relative: &str, contents: &str) -> std::io::Result<()> {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, contents)
    }

    fn remove(&self, relative: &str) -> std::io::Result<()> {
        let path = self.dir.path().join(relative);
        if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        }
    }

    fn settings(&self) -> RegistrySettings {
        RegistrySettings {
            providers: self.dir.path().join("providers"),
            clients: self.dir.path().join("clients"),
            tenants: self.dir.path().join("tenants"),
        }
    }

    fn load(&self, dev_simulators: bool) -> Result<Registry, Problems> {
        Registry::load(&self.settings(), &public_url(), dev_simulators)
    }

    /// The problems of a load that must fail.
    fn problems(&self, dev_simulators: bool) -> Problems {
        match self.load(dev_simulators) {
            Ok(_) => Problems(vec![Problem::new("test", "", "expected the load to fail, but it succeeded")]),
            Err(problems) => problems,
        }
    }
}

fn public_url() -> Url {
    Url::parse("http://localhost:8080").unwrap_or_else(|_| unreachable!("the literal is a valid URL"))
}

/// The problem reported for this file (path suffix) and key, if any.
fn find<'a>(problems: &'a Problems, file: &str, key: &str) -> Option<&'a Problem> {
    problems.0.iter().find(|p| p.source.ends_with(file) && p.key == key)
}

macro_rules! assert_problem {
    ($problems:expr, $file:expr, $key:expr, $reason_part:expr) => {{
        let problems = &$problems;
        let found = find(problems, $file, $key);
        assert!(found.is_some(), "no problem for {} key {:?}; got:\n{problems}", $file, $key);
        if let Some(problem) = found {
            assert!(problem.reason.contains($reason_part), "reason of {problem} lacks {:?}", $reason_part);
        }
    }};
}

mod loading {
    use super::*;

    #[test]
    fn shipped_development_entries_load_with_simulators_on() -> Result<(), Problems> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let settings = RegistrySettings {
            providers: root.join("providers"),
            clients: root.join("config/clients"),
            tenants: root.join("config/tenants"),
        };
        let registry = Registry::load(&settings, &public_url(), true)?;
        assert_eq!(
            registry.counts(),
            RegistryCounts { identity_providers: 5, payment_providers: 2, tenants: 2, clients: 2 }
        );
        let demo = registry.client_by_originator("demo-service").map(|c| c.id.as_str());
        assert_eq!(demo, Some("demo"));
        let bundid = registry.identity_provider("bundid-sim").and_then(|p| p.oidc()).map(|oidc| oidc.issuer.as_str());
        assert_eq!(bundid, Some("http://localhost:8080/dev/bundid"));
        let hannover = registry.tenant("03241001").map(|t| t.payment.provider.as_str());
        assert_eq!(hannover, Some("sim-pay-b"));
        Ok(())
    }

    /// The shipped destinations are the Fachverfahren simulator's: self-signed keys and a `plain:`
    /// callback secret, taken with the simulators on and refused as a production registry.
    #[test]
    fn shipped_development_destinations_load_only_with_simulators_on() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let settings = RegistrySettings {
            providers: root.join("providers"),
            clients: root.join("config/clients"),
            tenants: root.join("config/tenants"),
        };
        let transfer = crate::config::TransferSettings {
            destinations: root.join("config/destinations"),
            ..crate::config::TransferSettings::default()
        };
        let registry = Registry::load_with_destinations(&settings, Some(&transfer), &public_url(), true)
            .unwrap_or_else(|problems| panic!("{problems}"));
        let tenants: Vec<&str> = registry.destinations().map(|d| d.tenant.as_str()).collect();
        assert_eq!(tenants.len(), 2);
        assert!(tenants.contains(&"03241001") && tenants.contains(&"09162000"), "{tenants:?}");
        assert!(registry.destinations().all(|d| d.subscriber_client.as_str() == "fachverfahren-sim"
            && d.requires_fee("urn:de:fim:leika:leistung:99050012104000")));
        let refused = Registry::load_with_destinations(&settings, Some(&transfer), &public_url(), false)
            .err()
            .unwrap_or_else(|| panic!("a production registry must refuse the development destinations"));
        assert!(refused.to_string().contains("self-signed"), "{refused}");
    }

    #[test]
    fn shipped_development_entries_are_refused_with_simulators_off() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let settings = RegistrySettings {
            providers: root.join("providers"),
            clients: root.join("config/clients"),
            tenants: root.join("config/tenants"),
        };
        let problems = Registry::load(&settings, &public_url(), false).err().unwrap_or_default();
        assert_problem!(problems, "identity/bundid-sim.toml", "issuer", "development simulator");
        assert_problem!(problems, "identity/bundid-sim.toml", "client_auth.secret", "plain:");
        assert_problem!(problems, "payment/sim-pay.toml", "kind", "development only");
        assert_problem!(problems, "clients/demo.toml", "auth.secret", "plain:");
        assert_problem!(problems, "identity/bundid-saml-sim.toml", "saml.metadata_url", "development simulator");
        assert_problem!(problems, "identity/bundid-saml-sim.toml", "saml.signing_key", "plain:");
    }

    #[test]
    fn valid_tree_loads_with_defaults_and_placeholders_filled_in() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        let client = CLIENT.replace(
            "tenants = [",
            "notification_url = \"{public_url}/hooks\"\nnotification_secret = \"plain:whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             post_logout_redirect_uris = [\"{public_url}/bye\"]\ntenants = [",
        );
        tree.write("clients/service.toml", &client).map_err(io_problem)?;
        let registry = tree.load(true)?;

        let client = registry.client("service").ok_or_else(|| problem("client `service` is missing"))?;
        assert_eq!(client.min_level, Level::Low);
        assert_eq!(client.grant_types.iter().copied().collect::<Vec<_>>(), vec![GrantType::AuthorizationCode]);
        assert_eq!(client.id_token_alg, IdTokenAlg::ES256);
        assert!(!client.require_par);
        assert_eq!(client.sector, "service");
        assert_eq!(client.notification_url.as_ref().map(HttpUrl::as_str), Some("http://localhost:8080/hooks"));
        assert_eq!(client.post_logout_redirect_uris[0].as_str(), "http://localhost:8080/bye");
        assert!(client.allows_redirect_uri("https://service.example.org/callback"));
        assert!(!client.allows_redirect_uri("https://service.example.org/callback/"));
        assert!(client.may_act_for("12345678"));

        let idp = registry.identity_provider("idp").ok_or_else(|| problem("provider `idp` is missing"))?;
        assert_eq!(idp.level_of("L3"), Some(Level::Substantial));
        assert_eq!(idp.level_of("unknown"), None);
        assert_eq!(idp.level_of(""), None, "no acr proves nothing unless the entry says otherwise");
        assert_eq!(idp.acr_for(Level::High), Some("http://eidas.europa.eu/LoA/high"));
        assert_eq!(idp.oidc().map(|oidc| oidc.discovery_refresh.as_secs()), Some(3600));
        assert_eq!(registry.payment_provider("pay").map(|p| p.timeout.as_secs()), Some(10));
        assert_eq!(registry.client_by_originator("svc").map(|c| c.id.as_str()), Some("service"));
        assert!(registry.client_by_originator("nobody").is_none());
        assert_eq!(registry.counts().to_string(), "1 identity providers, 1 payment providers, 1 tenants, 1 clients");
        Ok(())
    }

    #[test]
    fn a_notification_url_needs_a_valid_signing_secret() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        let without = CLIENT.replace("tenants = [", "notification_url = \"https://svc.example.org/n\"\ntenants = [");
        tree.write("clients/service.toml", &without).map_err(io_problem)?;
        let problems = tree.load(true).err().unwrap_or_default();
        assert_problem!(problems, "clients/service.toml", "notification_secret", "required");
        let weak = without.replace("tenants = [", "notification_secret = \"plain:short\"\ntenants = [");
        tree.write("clients/service.toml", &weak).map_err(io_problem)?;
        let problems = tree.load(true).err().unwrap_or_default();
        assert_problem!(problems, "clients/service.toml", "notification_secret", "base64");
        Ok(())
    }

    /// URLs the service chose and pforte calls (SECURITY.md #28): https to a public host; loopback
    /// only with the development simulators; private, link-local and similar never.
    #[test]
    fn a_notification_url_and_jwks_uri_must_reach_a_public_host() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        let secret = "notification_secret = \"plain:whsec_XhU7Wkr3ASIjW+6x/kAbDvWY3+otvWFk7lCaaepiuJs=\"";
        let with = |notify: &str, jwks: &str| {
            CLIENT.replace("tenants = [", &format!("notification_url = \"{notify}\"\n{secret}\ntenants = [")).replace(
                "method = \"client_secret_post\"\nsecret = \"plain:client-secret\"",
                &format!("method = \"private_key_jwt\"\njwks_uri = \"{jwks}\""),
            )
        };
        tree.write("clients/service.toml", &with("https://10.1.2.3/n", "https://169.254.169.254/keys"))
            .map_err(io_problem)?;
        let problems = tree.load(true).err().unwrap_or_default();
        assert_problem!(problems, "clients/service.toml", "notification_url", "public host");
        assert_problem!(problems, "clients/service.toml", "auth.jwks_uri", "public host");

        tree.write("clients/service.toml", &with("http://127.0.0.1:9/n", "http://localhost:9/keys"))
            .map_err(io_problem)?;
        assert!(tree.load(true).is_ok(), "loopback with the development simulators");
        let problems = tree.problems(false);
        assert_problem!(problems, "clients/service.toml", "notification_url", "public host");
        assert_problem!(problems, "clients/service.toml", "auth.jwks_uri", "public host");
        Ok(())
    }

    #[test]
    fn a_provider_that_sends_no_acr_can_be_given_a_level() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        let entry = IDENTITY.replace("kind = \"oidc\"", "kind = \"oidc\"\nlevel_without_acr = \"low\"");
        tree.write("providers/identity/idp.toml", &entry).map_err(io_problem)?;
        let registry = tree.load(true)?;
        let idp = registry.identity_provider("idp").ok_or_else(|| problem("provider `idp` is missing"))?;
        assert_eq!(idp.level_of(""), Some(Level::Low));
        assert_eq!(idp.level_of("L3"), Some(Level::Substantial), "a sent acr still counts as mapped");
        Ok(())
    }

    #[test]
    fn resolved_secrets_never_show_in_debug_output() -> Result<(), Problems> {
        let registry = Tree::new().map_err(io_problem)?.load(true)?;
        let client = registry.client("service").ok_or_else(|| problem("client `service` is missing"))?;
        let secret = match &client.auth {
            ClientAuth::ClientSecretPost { secret } => Some(secret.expose_secret()),
            _ => None,
        };
        assert_eq!(secret, Some("client-secret"));
        let debug = format!("{registry:?}");
        for secret in ["client-secret", "idp-secret", "pay-secret"] {
            assert!(!debug.contains(secret), "{secret} shows in {debug}");
        }
        Ok(())
    }

    #[test]
    fn missing_provider_directories_mean_no_providers() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        tree.remove("providers").map_err(io_problem)?;
        tree.remove("clients/service.toml").map_err(io_problem)?;
        tree.remove("tenants/12345678.toml").map_err(io_problem)?;
        let registry = tree.load(true)?;
        assert_eq!(registry.counts().identity_providers + registry.counts().payment_providers, 0);
        Ok(())
    }

    #[test]
    fn files_that_are_not_toml_are_ignored() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        tree.write("clients/README.md", "not a registry entry = [").map_err(io_problem)?;
        tree.write("clients/service.toml.bak", "broken = [").map_err(io_problem)?;
        tree.write("clients/subdir/other.toml", "broken = [").map_err(io_problem)?;
        assert_eq!(tree.load(true)?.counts().clients, 1);
        Ok(())
    }

    #[test]
    fn development_simulators_are_allowed_when_switched_on() -> Result<(), Problems> {
        let tree = Tree::new().map_err(io_problem)?;
        tree.write("providers/payment/pay.toml", &PAYMENT.replace("\"xbezahldienste\"", "\"simulator\""))
            .map_err(io_problem)?;
        tree.write("providers/identity/idp.toml", &IDENTITY.replace("https://id.example.org", "{public_url}/dev/x"))
            .map_err(io_problem)?;
        tree.load(true)?;
        Ok(())
    }
}

mod problems {
    use super::*;

    #[test]
    fn a_toml_syntax_error_names_the_file_and_line() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/service.toml", &CLIENT.replace("display_name = \"Test service\"", "display_name = "))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "", "line 2");
        assert_problem!(problems, "clients/service.toml", "", "syntax error");
        assert!(problems.0.iter().all(|p| !p.reason.contains('\n')), "{problems}");
        Ok(())
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/service.toml", &CLIENT.replace("[auth]", "[auth]\nsecrett = \"plain:x\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "auth.secrett", "unknown key");
        Ok(())
    }

    #[test]
    fn routing_rules_choose_a_provider_by_amount_and_service() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("providers/payment/pay-large.toml", PAYMENT)?;
        let rules = "\n[[payment.rules]]\nprovider = \"pay-large\"\nmin_amount = \"500.00\"\n";
        tree.write("tenants/12345678.toml", &format!("{TENANT}{rules}"))?;
        let registry = tree.load(true).map_err(|p| std::io::Error::other(p.to_string()))?;
        let payment = &registry.tenant("12345678").expect("tenant").payment;
        let amount = |text: &str| text.parse::<rust_decimal::Decimal>().expect("decimal");
        assert_eq!(payment.provider_for(amount("499.99"), "svc").as_str(), "pay");
        assert_eq!(payment.provider_for(amount("500.00"), "svc").as_str(), "pay-large");
        Ok(())
    }

    #[test]
    fn a_routing_rule_to_an_unknown_provider_is_named() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let rules = "\n[[payment.rules]]\nprovider = \"nowhere\"\nmin_amount = \"1\"\n";
        tree.write("tenants/12345678.toml", &format!("{TENANT}{rules}"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "tenants/12345678.toml", "payment.rules[0].provider", "nowhere");
        Ok(())
    }

    #[test]
    fn a_routing_rule_without_a_condition_or_with_bad_amounts_is_named() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let rules = "\n[[payment.rules]]\nprovider = \"pay\"\n\n[[payment.rules]]\nprovider = \"pay\"\n\
                     min_amount = \"20\"\nmax_amount = \"10\"\n\n[[payment.rules]]\nprovider = \"pay\"\n\
                     min_amount = \"1.005\"\n";
        tree.write("tenants/12345678.toml", &format!("{TENANT}{rules}"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "tenants/12345678.toml", "payment.rules[0]", "needs a condition");
        assert_problem!(problems, "tenants/12345678.toml", "payment.rules[1].max_amount", "below min_amount");
        assert_problem!(problems, "tenants/12345678.toml", "payment.rules[2].min_amount", "two decimals");
        Ok(())
    }

    #[test]
    fn an_unknown_top_level_key_is_named() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("tenants/12345678.toml", &format!("colour = \"blue\"\n{TENANT}"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "tenants/12345678.toml", "colour", "unknown key, expected");
        Ok(())
    }

    #[test]
    fn a_wrong_type_names_the_key_and_position() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/service.toml", &format!("require_par = \"yes\"\n{CLIENT}"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "require_par", "expected a boolean (line 1, column 15)");
        Ok(())
    }

    #[test]
    fn a_wrong_type_inside_a_list_names_the_element() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/service.toml", &CLIENT.replace("\"http://127.0.0.1:3000/cb\"", "42"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "redirect_uris[1]", "invalid type");
        Ok(())
    }

    #[test]
    fn an_unknown_enum_value_in_a_quoted_map_key_is_named() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("providers/identity/idp.toml", &IDENTITY.replace("= \"high\"", "= \"highest\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "identity/idp.toml", "levels.\"http://eidas.europa.eu/LoA/high\"", "highest");
        Ok(())
    }

    #[test]
    fn a_missing_value_is_named_at_top_level_and_in_a_table() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("tenants/12345678.toml", "[payment]\nprovider = \"pay\"\n")?;
        tree.write("clients/service.toml", &CLIENT.replace("method = \"client_secret_post\"", ""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "tenants/12345678.toml", "display_name", "required value is missing");
        assert_problem!(problems, "clients/service.toml", "auth.method", "required value is missing");
        Ok(())
    }

    #[test]
    fn a_file_name_that_is_not_a_valid_id_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/my service.toml", CLIENT)?;
        tree.write("clients/a-name-that-is-far-too-long-for-an-id-here.toml", CLIENT)?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/my service.toml", "", "not a valid id");
        assert_problem!(problems, "clients/a-name-that-is-far-too-long-for-an-id-here.toml", "", "1 to 36");
        Ok(())
    }

    #[test]
    fn a_missing_clients_or_tenants_directory_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.remove("clients")?;
        tree.remove("tenants")?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients", "", "does not exist");
        assert_problem!(problems, "tenants", "", "does not exist");
        Ok(())
    }

    #[test]
    fn ids_that_differ_only_in_case_are_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/Service.toml", &CLIENT.replace("\"svc\"", "\"svc2\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "", "differs only in letter case");
        Ok(())
    }

    #[test]
    fn a_client_naming_an_unknown_identity_provider_or_tenant_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let client = CLIENT.replace("[\"idp\"]", "[\"idp\", \"nope\"]").replace("[\"12345678\"]", "[\"99999999\"]");
        tree.write("clients/service.toml", &client)?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "identity_providers[1]", "identity provider `nope`");
        assert_problem!(problems, "clients/service.toml", "tenants[0]", "tenant `99999999`");
        Ok(())
    }

    #[test]
    fn a_tenant_naming_an_unknown_payment_provider_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("tenants/12345678.toml", &TENANT.replace("\"pay\"", "\"elsewhere\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "tenants/12345678.toml", "payment.provider", "payment provider `elsewhere`");
        Ok(())
    }

    #[test]
    fn a_client_whose_min_level_no_provider_login_reaches_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let identity = IDENTITY
            .replace("\"http://eidas.europa.eu/LoA/high\" = \"high\"", "")
            .replace("high = \"http://eidas.europa.eu/LoA/high\"", "");
        tree.write("providers/identity/idp.toml", &identity)?;
        tree.write("clients/service.toml", &format!("min_level = \"high\"\n{CLIENT}"))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "identity_providers[0]", "at most level substantial");
        Ok(())
    }

    #[test]
    fn a_duplicate_originator_id_is_reported_on_the_second_client() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/zweiter.toml", &CLIENT.replace("\"svc\"", "\"SVC\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/zweiter.toml", "originator_id", "client `service`");
        assert!(find(&problems, "clients/service.toml", "originator_id").is_none(), "{problems}");
        Ok(())
    }

    #[test]
    fn bad_urls_are_reported_with_their_index() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let client = CLIENT
            .replace(
                "\"http://127.0.0.1:3000/cb\"",
                "\"http://service.example.org/cb\", \"https://x.example/cb#frag\", \"/relative\", \"http://[::1]:9/cb\"",
            )
            .replace("tenants = [", "notification_url = \"ftp://example.org/n\"\ntenants = [");
        tree.write("clients/service.toml", &client)?;
        tree.write(
            "providers/identity/idp.toml",
            &IDENTITY.replace("https://id.example.org", "https://id.example.org?x=1"),
        )?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "redirect_uris[1]", "must use https");
        assert_problem!(problems, "clients/service.toml", "redirect_uris[2]", "fragment");
        assert_problem!(problems, "clients/service.toml", "redirect_uris[3]", "not a valid absolute URL");
        assert!(find(&problems, "clients/service.toml", "redirect_uris[4]").is_none(), "{problems}");
        assert_problem!(problems, "clients/service.toml", "notification_url", "https");
        assert_problem!(problems, "identity/idp.toml", "issuer", "query");
        Ok(())
    }

    #[test]
    fn plain_secrets_are_refused_without_simulators() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let problems = tree.problems(false);
        assert_problem!(problems, "identity/idp.toml", "client_auth.secret", "development only");
        assert_problem!(problems, "payment/pay.toml", "auth.password", "development only");
        assert_problem!(problems, "clients/service.toml", "auth.secret", "development only");
        Ok(())
    }

    #[test]
    fn a_simulator_payment_provider_is_refused_without_simulators() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("providers/payment/pay.toml", &PAYMENT.replace("\"xbezahldienste\"", "\"simulator\""))?;
        let problems = tree.problems(false);
        assert_problem!(problems, "payment/pay.toml", "kind", "development only");
        Ok(())
    }

    #[test]
    fn an_issuer_at_the_development_simulators_is_refused_without_simulators() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write(
            "providers/identity/idp.toml",
            &IDENTITY.replace("https://id.example.org", "{public_url}/dev/bundid"),
        )?;
        let problems = tree.problems(false);
        assert_problem!(problems, "identity/idp.toml", "issuer", "development simulator");
        Ok(())
    }

    #[test]
    fn a_missing_environment_variable_is_named() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let variable = "PFORTE_TEST_REGISTRY_SURELY_UNSET_8d1f";
        tree.write("clients/service.toml", &CLIENT.replace("plain:client-secret", &format!("env:{variable}")))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "auth.secret", variable);
        Ok(())
    }

    #[test]
    fn method_specific_keys_are_required_and_stray_ones_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let client = CLIENT.replace("method = \"client_secret_post\"", "method = \"private_key_jwt\"");
        tree.write("clients/service.toml", &client)?;
        let payment = PAYMENT.replace("\"xbezahldienste\"", "\"pmpayment\"").replace("\"basic\"", "\"none\"");
        tree.write("providers/payment/pay.toml", &payment)?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "auth.secret", "not used with method private_key_jwt");
        assert_problem!(problems, "clients/service.toml", "auth.jwks_uri", "jwks_uri or jwks is required");
        assert_problem!(problems, "payment/pay.toml", "hmac_key", "required for kind pmpayment");
        assert_problem!(problems, "payment/pay.toml", "auth.username", "not used with auth method none");
        Ok(())
    }

    #[test]
    fn an_inline_jwks_must_hold_public_keys() -> std::io::Result<()> {
        let tree = Tree::new()?;
        let jwks = r#"jwks = '{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret"}]}'"#;
        let client = CLIENT
            .replace("method = \"client_secret_post\"", "method = \"private_key_jwt\"")
            .replace("secret = \"plain:client-secret\"", jwks);
        tree.write("clients/service.toml", &client)?;
        tree.write("clients/empty.toml", &client.replace("[{\"kty\"", "[]").replace("\"svc\"", "\"svc2\""))?;
        let problems = tree.problems(true);
        assert_problem!(problems, "clients/service.toml", "auth.jwks", "private key");
        Ok(())
    }

    #[test]
    fn semantic_rules_on_claims_scopes_and_lists_are_checked() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write(
            "providers/identity/idp.toml",
            &IDENTITY.replace("given_name = \"given_name\"", "vorname = \"first_name\"").replace("\"openid\", ", ""),
        )?;
        tree.write(
            "clients/service.toml",
            &CLIENT.replace("[\"openid\", \"email\"]", "[\"email\"]").replace("[\"idp\"]", "[]"),
        )?;
        let problems = tree.problems(true);
        assert_problem!(problems, "identity/idp.toml", "claims.vorname", "not a pforte claim");
        assert_problem!(problems, "identity/idp.toml", "scopes", "openid");
        assert_problem!(problems, "clients/service.toml", "scopes", "openid");
        assert_problem!(problems, "clients/service.toml", "identity_providers", "at least one");
        Ok(())
    }

    #[test]
    fn every_problem_of_one_load_is_reported() -> std::io::Result<()> {
        let tree = Tree::new()?;
        tree.write("clients/broken.toml", "display_name = [")?;
        tree.write("tenants/12345678.toml", &TENANT.replace("\"pay\"", "\"missing\""))?;
        let client = CLIENT.replace("https://service.example.org/callback", "http://evil.example/cb");
        tree.write("clients/service.toml", &client.replace("plain:client-secret", "env:PFORTE_TEST_UNSET_4711"))?;
        let problems = tree.problems(false);
        assert_problem!(problems, "clients/broken.toml", "", "syntax error");
        assert_problem!(problems, "tenants/12345678.toml", "payment.provider", "missing");
        assert_problem!(problems, "clients/service.toml", "redirect_uris[0]", "https");
        assert_problem!(problems, "clients/service.toml", "auth.secret", "PFORTE_TEST_UNSET_4711");
        assert_problem!(problems, "identity/idp.toml", "client_auth.secret", "plain:");
        assert!(problems.0.len() >= 6, "{problems}");
        Ok(())
    }
}

mod values {
    use super::*;

    #[test]
    fn levels_are_ordered_low_substantial_high() {
        assert!(Level::Low < Level::Substantial && Level::Substantial < Level::High);
        assert_eq!(Level::ALL.iter().max(), Some(&Level::High));
    }

    #[test]
    fn entity_ids_allow_letters_digits_underscore_and_dash_up_to_36() {
        assert!(EntityId::parse("09162000").is_ok());
        assert!(EntityId::parse("demo_service-2").is_ok());
        assert!(EntityId::parse(&"a".repeat(36)).is_ok());
        assert!(EntityId::parse(&"a".repeat(37)).is_err());
        assert!(EntityId::parse("").is_err());
        assert!(EntityId::parse("ümlaut").is_err());
        assert!(EntityId::parse("a.b").is_err());
    }

    #[test]
    fn plain_http_is_allowed_only_on_loopback_hosts() {
        for ok in ["http://localhost:8080/cb", "http://127.3.2.1/cb", "http://[::1]:9000/", "https://example.org/"] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["http://example.org/cb", "http://localhost.example.org/", "http://10.0.0.1/", "custom://cb"] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
        assert!(HttpUrl::parse("https://user:pw@example.org/").is_err());
    }

    #[test]
    fn urls_keep_their_written_form_for_exact_comparison() {
        let issuer = HttpUrl::parse("https://id.example.org").map(|u| u.as_str().to_owned());
        assert_eq!(issuer.as_deref(), Ok("https://id.example.org"));
    }
}

fn io_problem(error: std::io::Error) -> Problems {
    problem(&error.to_string())
}

fn problem(reason: &str) -> Problems {
    Problems(vec![Problem::new("test", "", reason)])
}

/// The registry's finance parts.
mod destination;
mod finance;
mod reload;
