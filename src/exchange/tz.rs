//! Windows time-zone ids (what EWS speaks) ↔ IANA names (what chrono-tz and Salesforce's
//! TimeZoneSidKey speak), from CLDR's complete windowsZones mapping in the spec crate.
//!
//! CLDR keeps tzdb's older spellings of renamed zones (`Asia/Calcutta`, `Europe/Kiev`); tether
//! answers with the current tzdb name and accepts both spellings.

use chrono_tz::Tz;
use tether_spec::windows_zones;

/// tzdb's current names for zones CLDR lists under an older name (tzdb's `backward` links,
/// current → old), and `UTC`, a `backward` link to CLDR's `Etc/UTC`.
const RENAMED: &[(&str, &str)] = &[
    ("America/Argentina/Buenos_Aires", "America/Buenos_Aires"),
    ("America/Argentina/Catamarca", "America/Catamarca"),
    ("America/Argentina/Cordoba", "America/Cordoba"),
    ("America/Argentina/Jujuy", "America/Jujuy"),
    ("America/Argentina/Mendoza", "America/Mendoza"),
    ("America/Indiana/Indianapolis", "America/Indianapolis"),
    ("America/Kentucky/Louisville", "America/Louisville"),
    ("America/Nuuk", "America/Godthab"),
    ("Asia/Ho_Chi_Minh", "Asia/Saigon"),
    ("Asia/Kathmandu", "Asia/Katmandu"),
    ("Asia/Kolkata", "Asia/Calcutta"),
    ("Asia/Yangon", "Asia/Rangoon"),
    ("Atlantic/Faroe", "Atlantic/Faeroe"),
    ("Europe/Kyiv", "Europe/Kiev"),
    ("Pacific/Kanton", "Pacific/Enderbury"),
    ("UTC", "Etc/UTC"),
];

/// The IANA name for a Windows zone id (tzdb's current spelling).
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    let cldr = windows_zones::windows_to_iana(windows)?;
    Some(
        RENAMED
            .iter()
            .find(|(current, old)| *old == cldr && *current != "UTC")
            .map_or(cldr, |(current, _)| *current),
    )
}

/// The Windows zone id for an IANA name, in CLDR's spelling or tzdb's current one.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    windows_zones::iana_to_windows(iana).or_else(|| {
        let (_, old) = RENAMED
            .iter()
            .find(|(current, _)| current.eq_ignore_ascii_case(iana))?;
        windows_zones::iana_to_windows(old)
    })
}

/// A chrono-tz zone for a Windows id.
pub fn windows_tz(windows: &str) -> Option<Tz> {
    windows_to_iana(windows).and_then(|i| i.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_and_every_row_is_a_real_zone() {
        assert_eq!(
            windows_to_iana("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            iana_to_windows("Europe/Paris"),
            Some("Romance Standard Time")
        );
        assert_eq!(
            iana_to_windows("America/New_York"),
            Some("Eastern Standard Time")
        );
        assert_eq!(windows_to_iana("No Such Zone"), None);
        for w in windows_zones::windows_zone_ids() {
            let canonical = windows_to_iana(w).unwrap();
            assert!(
                canonical.parse::<Tz>().is_ok(),
                "{canonical} is not an IANA zone"
            );
            assert!(windows_tz(w).is_some(), "{w}");
            assert_eq!(iana_to_windows(canonical), Some(w));
        }
    }

    #[test]
    fn taipei_and_east_africa_are_known_zones() {
        // Issue 13: both were missing from the old 38-zone table, so their events fell back
        // to UTC and an all-day event reached Salesforce a day early.
        assert_eq!(windows_tz("Taipei Standard Time"), Some(Tz::Asia__Taipei));
        assert_eq!(
            windows_tz("E. Africa Standard Time"),
            Some(Tz::Africa__Nairobi)
        );
        assert_eq!(iana_to_windows("Asia/Taipei"), Some("Taipei Standard Time"));
        assert_eq!(
            iana_to_windows("Africa/Nairobi"),
            Some("E. Africa Standard Time")
        );
    }

    #[test]
    fn renamed_zones_answer_in_either_spelling() {
        assert_eq!(windows_to_iana("India Standard Time"), Some("Asia/Kolkata"));
        assert_eq!(windows_to_iana("FLE Standard Time"), Some("Europe/Kyiv"));
        assert_eq!(windows_to_iana("UTC"), Some("Etc/UTC"));
        for iana in ["Asia/Kolkata", "Asia/Calcutta", "asia/kolkata"] {
            assert_eq!(iana_to_windows(iana), Some("India Standard Time"), "{iana}");
        }
        for iana in ["Europe/Kyiv", "Europe/Kiev", "Europe/Helsinki"] {
            assert_eq!(iana_to_windows(iana), Some("FLE Standard Time"), "{iana}");
        }
        for iana in ["UTC", "Etc/UTC", "Etc/GMT"] {
            assert_eq!(iana_to_windows(iana), Some("UTC"), "{iana}");
        }
        assert_eq!(
            iana_to_windows("America/Argentina/Buenos_Aires"),
            Some("Argentina Standard Time")
        );
        // Each pair: both names are zones, the old one is CLDR's, the current one is not.
        for (current, old) in RENAMED {
            assert!(current.parse::<Tz>().is_ok(), "{current}");
            assert!(old.parse::<Tz>().is_ok(), "{old}");
            assert!(windows_zones::iana_to_windows(old).is_some(), "{old}");
            assert_eq!(windows_zones::iana_to_windows(current), None, "{current}");
        }
    }
}
