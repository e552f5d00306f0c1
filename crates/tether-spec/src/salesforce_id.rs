//! Salesforce record ids: 15 case-sensitive characters plus a 3-character suffix that makes
//! the id unique when compared case-insensitively (the checksum Salesforce documents for
//! 18-character ids).

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The case-safe suffix of a 15-character id: for each block of five characters, a 5-bit
/// number whose bit i is set when character i is an upper-case letter.
pub fn checksum_suffix(id15: &str) -> Option<String> {
    let bytes = id15.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut out = String::with_capacity(3);
    for block in bytes.chunks(5) {
        let mut n = 0usize;
        for (i, b) in block.iter().enumerate() {
            if b.is_ascii_uppercase() {
                n |= 1 << i;
            }
        }
        out.push(SUFFIX_ALPHABET[n] as char);
    }
    Some(out)
}

/// The 18-character form of a 15- or 18-character id (an 18-character id is re-checked).
pub fn to_18(id: &str) -> Option<String> {
    match id.len() {
        15 => checksum_suffix(id).map(|s| format!("{id}{s}")),
        18 => {
            // `get`, not `split_at`: 18 bytes of non-ASCII text may not split at byte 15.
            let (head, tail) = (id.get(..15)?, id.get(15..)?);
            let s = checksum_suffix(head)?;
            s.eq_ignore_ascii_case(tail).then(|| format!("{head}{s}"))
        }
        _ => None,
    }
}

/// True for a well-formed 15- or 18-character id (18: its suffix must match).
pub fn is_valid(id: &str) -> bool {
    to_18(id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_known_ids() {
        // Examples published by Salesforce and widely used to check the algorithm.
        assert_eq!(
            to_18("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert_eq!(
            to_18("0030000000000AA").as_deref(),
            Some("0030000000000AAAAY")
        );
        assert_eq!(
            to_18("00Qxxxxxxxxxxxx").as_deref(),
            Some("00QxxxxxxxxxxxxEAA")
        );
        assert_eq!(
            to_18("AAAAAAAAAAAAAAA").as_deref(),
            Some("AAAAAAAAAAAAAAA555")
        );
        assert_eq!(
            to_18("003bbbbbbbbbbBb").as_deref(),
            Some("003bbbbbbbbbbBbAAI")
        );
        // Ids printed in the REST API Developer Guide's examples (query and sObject
        // Collections delete responses).
        for id in [
            "001D000000IRFmaIAH",
            "001RM000003oLrHYAU",
            "001RM000003oLraYAE",
            "001RM000003oLruYAE",
            "01gD0000002HU6KIAW",
        ] {
            assert_eq!(to_18(&id[..15]).as_deref(), Some(id), "{id}");
        }
    }

    #[test]
    fn an_18_byte_id_with_a_multibyte_character_is_invalid_not_a_panic() {
        // 14 ASCII characters, a 2-byte "é" across byte 15, 2 more: 18 bytes.
        let id = "001A0000006Vm9\u{e9}AC";
        assert_eq!(id.len(), 18);
        assert_eq!(to_18(id), None);
        assert!(!is_valid("001A0000006Vm9r\u{e9}A"));
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(!is_valid("001A0000006Vm9rIAD"));
        assert!(!is_valid("001A0000006Vm9"));
        assert!(!is_valid("001A0000006Vm9r'AC"));
        assert!(is_valid("001A0000006Vm9riac"));
    }
}
