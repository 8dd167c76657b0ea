//! The SAML simulators' profiles: what tells the BundID-like account from the company account
//! (path, personas, attribute names, the attribute with the stable identifier).

use super::SimKind;

const BPK2: &str = "urn:oid:1.3.6.1.4.1.25484.494450.3";

/// What tells one simulated account provider from the other.
pub(crate) struct Profile {
    pub path: &'static str,
    pub title: &'static str,
    pub kind: SimKind,
    /// The attribute carrying the stable identifier, derived per person and service provider.
    pub subject_attribute: &'static str,
    /// pforte's claim names in the personas → the provider's attribute names.
    pub attributes: &'static [(&'static str, &'static str)],
    /// The attribute that repeats the level (besides `AuthnContextClassRef`), if the provider sends one.
    pub level_attribute: Option<&'static str>,
}

pub(crate) const BUNDID: Profile = Profile {
    path: "/dev/bundid-saml",
    title: "BundID (SAML-Simulator)",
    kind: SimKind::BundId,
    subject_attribute: BPK2,
    attributes: BUNDID_ATTRIBUTES,
    level_attribute: None,
};

pub(crate) const UNTERNEHMENSKONTO: Profile = Profile {
    path: "/dev/unternehmenskonto-saml",
    title: "Mein Unternehmenskonto (SAML-Simulator)",
    kind: SimKind::Unternehmenskonto,
    subject_attribute: "Unternehmenskonto-Kennung",
    attributes: COMPANY_ATTRIBUTES,
    level_attribute: Some("ElsterVertrauensniveauAuthentifizierung"),
};

/// The company account's attribute names (Mein Unternehmenskonto's, see identity.md): the
/// organisation, then the acting person.
const COMPANY_ATTRIBUTES: &[(&str, &str)] = &[
    ("organisation_name", "Firmenname"),
    ("steuernummer", "StNr"),
    ("ust_id", "umsatzsteuerId"),
    ("rechtsform", "Rechtsform"),
    ("registerart", "Registerart"),
    ("registernummer", "Registernummer"),
    ("registergericht", "Registergericht"),
    ("given_name", "urn:oid:2.5.4.42"),
    ("family_name", "urn:oid:2.5.4.4"),
    ("birthdate", "urn:oid:1.2.40.0.10.2.1.1.55"),
    ("email", "urn:oid:0.9.2342.19200300.100.1.3"),
];

/// pforte's claim names in the personas → BundID's attribute names (OIDs).
const BUNDID_ATTRIBUTES: &[(&str, &str)] = &[
    ("given_name", "urn:oid:2.5.4.42"),
    ("family_name", "urn:oid:2.5.4.4"),
    ("birthdate", "urn:oid:1.2.40.0.10.2.1.1.55"),
    ("place_of_birth", "urn:oid:1.3.6.1.5.5.7.9.2"),
    ("birth_name", "urn:oid:1.2.40.0.10.2.1.1.225566"),
    ("nationality", "urn:oid:1.2.40.0.10.2.1.1.225577"),
    ("email", "urn:oid:0.9.2342.19200300.100.1.3"),
    ("title", "urn:oid:0.9.2342.19200300.100.1.40"),
];
