//! pforte's end-to-end reference for a payment: what stands in ISO 20022 `EndToEndId` (camt.054
//! export) and what a provider may carry through a SEPA transfer instead of its own reference.

/// `EndToEndId` is `Max35Text` in camt.054.001.08 and in SEPA's pain.001/pacs.008.
pub const END_TO_END_ID_MAX: usize = 35;

/// The transaction id's first 35 characters (the whole id when it is shorter). pforte's ids are 43
/// characters of base64url over 32 random bytes, so the first 35 still carry 210 random bits: no two
/// payments share them, and an id is found again from them (reconciliation matches either form).
pub fn end_to_end_id(transaction_id: &str) -> &str {
    match transaction_id.char_indices().nth(END_TO_END_ID_MAX) {
        Some((cut, _)) => &transaction_id[..cut],
        None => transaction_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_over_35_characters_is_cut_to_its_first_35() {
        let id = "pX_tQ2kHT5brgH6jP3gs06FljLcxid5o47x4ayn73x8";
        assert_eq!(end_to_end_id(id), &id[..35]);
        assert_eq!(end_to_end_id("bulk-00001"), "bulk-00001");
        assert_eq!(end_to_end_id(&"ä".repeat(40)), "ä".repeat(35), "characters, not bytes");
    }
}
