//! Test data of the simulators: the people and companies a tester can log in as, and the levels each
//! account offers. All names, numbers and addresses are invented (the Mustermann family is the German
//! specimen name); none belongs to a real person or company.

use serde_json::{json, Map, Value};

use super::SimKind;

/// Someone a tester can log in as. `sub` is fixed, so repeated logins are the same account.
pub(crate) struct Persona {
    pub key: &'static str,
    pub sub: &'static str,
    /// What the choice list shows.
    pub label: &'static str,
    pub summary: &'static str,
    claims: fn() -> Value,
}

impl Persona {
    /// The claims as the upstream names them (see the claim maps in `providers/identity/`).
    pub(crate) fn claims(&self) -> Map<String, Value> {
        match (self.claims)() {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// A way to log in and the `acr` it proves.
pub(crate) struct LevelOption {
    pub acr: &'static str,
    pub label: &'static str,
    /// Authentication method references (RFC 8176 where one fits; `eID` as BundID names the eID card).
    pub amr: &'static [&'static str],
}

pub(crate) fn personas(kind: SimKind) -> &'static [Persona] {
    match kind {
        SimKind::BundId => &CITIZENS,
        SimKind::Unternehmenskonto => &COMPANIES,
        SimKind::Staff => &STAFF,
    }
}

pub(crate) fn persona(kind: SimKind, key: &str) -> Option<&'static Persona> {
    personas(kind).iter().find(|p| p.key == key)
}

pub(crate) fn levels(kind: SimKind) -> &'static [LevelOption] {
    match kind {
        SimKind::BundId => &CITIZEN_LEVELS,
        SimKind::Unternehmenskonto => &COMPANY_LEVELS,
        SimKind::Staff => &STAFF_LEVELS,
    }
}

pub(crate) fn level(kind: SimKind, acr: &str) -> Option<&'static LevelOption> {
    levels(kind).iter().find(|l| l.acr == acr)
}

static CITIZEN_LEVELS: [LevelOption; 3] = [
    LevelOption { acr: "STORK-QAA-Level-1", label: "Benutzername und Passwort (Basisregistrierung)", amr: &["pwd"] },
    LevelOption { acr: "STORK-QAA-Level-3", label: "ELSTER-Zertifikat (substanziell)", amr: &["swk"] },
    LevelOption { acr: "STORK-QAA-Level-4", label: "Online-Ausweis (hoch)", amr: &["eID"] },
];

static COMPANY_LEVELS: [LevelOption; 2] = [
    LevelOption {
        acr: "substanziell",
        label: "ELSTER-Organisationszertifikat als Datei (substanziell)",
        amr: &["swk"],
    },
    LevelOption { acr: "hoch", label: "ELSTER-Organisationszertifikat auf Sicherheitsstick (hoch)", amr: &["hwk"] },
];

static STAFF_LEVELS: [LevelOption; 1] =
    [LevelOption { acr: "dienstkonto-mfa", label: "Passwort und Sicherheitsschlüssel", amr: &["pwd", "hwk"] }];

/// Staff of the demo authorities: one in each finance office, and one outside finance (her groups
/// give no finance access, so her sign-in is refused).
static STAFF: [Persona; 3] = [
    Persona {
        key: "kasse-muenchen",
        sub: "dienstkonto-sim-0001-kasse-muenchen",
        label: "Katrin Kassner (Stadtkasse München)",
        summary: "Gruppe kasse-09162000",
        claims: kasse_muenchen,
    },
    Persona {
        key: "kasse-hannover",
        sub: "dienstkonto-sim-0002-kasse-hannover",
        label: "Bernd Buchwald (Stadtkasse Hannover)",
        summary: "Gruppe kasse-03241001",
        claims: kasse_hannover,
    },
    Persona {
        key: "bauamt",
        sub: "dienstkonto-sim-0003-bauamt",
        label: "Petra Plan (Bauamt München)",
        summary: "Gruppe bauamt-09162000, keine Kasse",
        claims: bauamt,
    },
];

fn kasse_muenchen() -> Value {
    json!({ "given_name": "Katrin", "family_name": "Kassner", "groups": ["kasse-09162000", "alle-09162000"] })
}

fn kasse_hannover() -> Value {
    json!({ "given_name": "Bernd", "family_name": "Buchwald", "groups": ["kasse-03241001"] })
}

fn bauamt() -> Value {
    json!({ "given_name": "Petra", "family_name": "Plan", "groups": ["bauamt-09162000", "alle-09162000"] })
}

static CITIZENS: [Persona; 3] = [
    Persona {
        key: "erika",
        sub: "bundid-sim-6f1c2a3e-0001-4d5e-9a7b-erika",
        label: "Erika Mustermann",
        summary: "geb. Gabler, 12.08.1964 in Berlin, wohnhaft in Köln",
        claims: erika,
    },
    Persona {
        key: "hans-guenther",
        sub: "bundid-sim-6f1c2a3e-0002-4d5e-9a7b-hansguenther",
        label: "Dr. Hans-Günther von Drebenbusch-Dalgoßen",
        summary: "langer Name mit Titel und Umlauten, 25.01.1946 in Bremerhaven, wohnhaft in Hannover",
        claims: hans_guenther,
    },
    Persona {
        key: "leyla",
        sub: "bundid-sim-6f1c2a3e-0003-4d5e-9a7b-leyla",
        label: "Leyla Öztürk",
        summary: "ohne Titel und Geburtsnamen, 03.11.1998 in München, wohnhaft in München",
        claims: leyla,
    },
];

static COMPANIES: [Persona; 2] = [
    Persona {
        key: "musterbau",
        sub: "uk-sim-3b9d7e10-0001-4c2a-8f11-musterbau",
        label: "Musterbau GmbH – Max Mustermann",
        summary: "GmbH, HRB 123456, Amtsgericht München",
        claims: musterbau,
    },
    Persona {
        key: "beispiel-handwerk",
        sub: "uk-sim-3b9d7e10-0002-4c2a-8f11-handwerk",
        label: "Beispiel Handwerk e. K. – Jürgen Weiß",
        summary: "eingetragener Kaufmann, HRA 20815, Amtsgericht Hannover",
        claims: beispiel_handwerk,
    },
];

fn erika() -> Value {
    json!({
        "given_name": "Erika",
        "family_name": "Mustermann",
        "birthdate": "1964-08-12",
        "place_of_birth": "Berlin",
        "birth_name": "Gabler",
        "nationality": "D",
        "email": "erika.mustermann@example.org",
        "address": {
            "street_address": "Heidestraße 17",
            "postal_code": "51147",
            "locality": "Köln",
            "country": "DE"
        },
        "postbox_reference": "postfach-sim-erika-7c41"
    })
}

fn hans_guenther() -> Value {
    json!({
        "given_name": "Hans-Günther",
        "family_name": "von Drebenbusch-Dalgoßen",
        "title": "Dr.",
        "birthdate": "1946-01-25",
        "place_of_birth": "Bremerhaven",
        "birth_name": "Weiß",
        "nationality": "D",
        "email": "hg.drebenbusch@example.org",
        "address": {
            "street_address": "Podbielskistraße 3",
            "postal_code": "30163",
            "locality": "Hannover",
            "country": "DE"
        },
        "postbox_reference": "postfach-sim-hansguenther-2e90"
    })
}

fn leyla() -> Value {
    json!({
        "given_name": "Leyla",
        "family_name": "Öztürk",
        "birthdate": "1998-11-03",
        "place_of_birth": "München",
        "nationality": "D",
        "email": "leyla.oeztuerk@example.org",
        "address": {
            "street_address": "Schwanthalerstraße 8",
            "postal_code": "80336",
            "locality": "München",
            "country": "DE"
        },
        "postbox_reference": "postfach-sim-leyla-51ad"
    })
}

fn musterbau() -> Value {
    json!({
        "given_name": "Max",
        "family_name": "Mustermann",
        "birthdate": "1978-04-01",
        "email": "max.mustermann@musterbau.example",
        "organisation_name": "Musterbau GmbH",
        "steuernummer": "143/815/08155",
        "ust_id": "DE123456789",
        "rechtsform": "Gesellschaft mit beschränkter Haftung",
        "registerart": "HRB",
        "registernummer": "123456",
        "registergericht": "Amtsgericht München",
        "organisation_address": {
            "street_address": "Industriestraße 42",
            "postal_code": "80939",
            "locality": "München",
            "country": "DE"
        }
    })
}

fn beispiel_handwerk() -> Value {
    json!({
        "given_name": "Jürgen",
        "family_name": "Weiß",
        "birthdate": "1969-09-30",
        "email": "info@beispiel-handwerk.example",
        "organisation_name": "Beispiel Handwerk e. K.",
        "steuernummer": "25/200/12345",
        "ust_id": "DE987654321",
        "rechtsform": "Eingetragener Kaufmann",
        "registerart": "HRA",
        "registernummer": "20815",
        "registergericht": "Amtsgericht Hannover",
        "organisation_address": {
            "street_address": "Am Küchengarten 11",
            "postal_code": "30449",
            "locality": "Hannover",
            "country": "DE"
        }
    })
}
