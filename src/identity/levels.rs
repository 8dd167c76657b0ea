//! Levels of assurance as online services see them (eIDAS URIs) and the session limits each level
//! allows (BSI TR-03160-1).

use crate::registry::Level;

pub(crate) fn eidas_uri(level: Level) -> &'static str {
    match level {
        Level::Low => "http://eidas.europa.eu/LoA/low",
        Level::Substantial => "http://eidas.europa.eu/LoA/substantial",
        Level::High => "http://eidas.europa.eu/LoA/high",
    }
}

/// Reads one `acr_values` entry: the eIDAS URI, the bare English name, or the German one.
pub(crate) fn parse_acr_value(value: &str) -> Option<Level> {
    match value {
        "http://eidas.europa.eu/LoA/low" | "low" | "niedrig" => Some(Level::Low),
        "http://eidas.europa.eu/LoA/substantial" | "substantial" | "substanziell" => Some(Level::Substantial),
        "http://eidas.europa.eu/LoA/high" | "high" | "hoch" => Some(Level::High),
        _ => None,
    }
}

/// The longest session and the longest idle time, in seconds, a login at this level may have.
pub(crate) fn session_limits(level: Level) -> (i64, i64) {
    match level {
        Level::Low => (12 * 3600, 60 * 60),
        Level::Substantial => (2 * 3600, 30 * 60),
        Level::High => (30 * 60, 5 * 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_round_trips_through_its_eidas_uri() {
        for level in Level::ALL {
            assert_eq!(parse_acr_value(eidas_uri(level)), Some(level));
        }
        assert_eq!(parse_acr_value("urn:unknown"), None);
    }

    #[test]
    fn higher_levels_allow_shorter_sessions() {
        assert!(session_limits(Level::High).0 < session_limits(Level::Substantial).0);
        assert!(session_limits(Level::Substantial).1 < session_limits(Level::Low).1);
    }
}
