//! Cells for spreadsheets: every CSV pforte writes passes text from outside through here, so a
//! value that a spreadsheet would run as a formula is kept as text (SECURITY.md #29).

/// Text from outside (a client's, provider's or bank's value) starting like a formula would be run by a
/// spreadsheet opening the CSV; a leading apostrophe keeps it text. Ids of letters, digits, `-` and
/// `_` (pforte's and the simulators' transaction ids may start with `-`) are no formula and stay as
/// they are, so they can still be searched for.
pub(crate) fn spreadsheet_safe(text: &str) -> String {
    let id_like = text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let formula = text.starts_with(['=', '+', '@', '\t', '\r']) || (text.starts_with('-') && !id_like);
    if formula {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}
