//! Windows time-zone ids (what EWS speaks) resolved to tzdb rules, through CLDR's complete
//! windowsZones mapping (tether-spec) and chrono-tz. Every Windows zone CLDR maps is known.

use chrono_tz::Tz;
use tether_spec::windows_zones;

/// tzdb's current names of zones CLDR lists under their older names (tzdb's `backward`
/// links), so an IANA name in either spelling finds its Windows zone.
const TZDB_RENAMED: &[(&str, &str)] = &[
    ("America/Argentina/Buenos_Aires", "America/Buenos_Aires"),
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

/// The tzdb zone of a Windows zone id.
pub fn windows_tz(windows: &str) -> Option<Tz> {
    windows_zones::windows_to_iana(windows)?.parse().ok()
}

/// The Windows zone id of an IANA zone name (current or older tzdb spelling).
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    windows_zones::iana_to_windows(iana).or_else(|| {
        let (_, old) = TZDB_RENAMED
            .iter()
            .find(|(current, _)| current.eq_ignore_ascii_case(iana))?;
        windows_zones::iana_to_windows(old)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_windows_zone_cldr_maps_resolves_to_a_tzdb_zone() {
        let ids: Vec<&str> = windows_zones::windows_zone_ids().collect();
        assert!(ids.len() > 130, "{}", ids.len());
        for id in ids {
            assert!(windows_tz(id).is_some(), "{id}");
        }
        assert_eq!(
            windows_tz("Taipei Standard Time"),
            Some(chrono_tz::Asia::Taipei)
        );
        assert_eq!(
            windows_tz("E. Africa Standard Time"),
            Some(chrono_tz::Africa::Nairobi)
        );
    }

    #[test]
    fn iana_names_in_either_spelling_find_their_windows_zone() {
        assert_eq!(iana_to_windows("Asia/Kolkata"), Some("India Standard Time"));
        assert_eq!(
            iana_to_windows("Asia/Calcutta"),
            Some("India Standard Time")
        );
        assert_eq!(
            iana_to_windows("Europe/Berlin"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(iana_to_windows("Mars/Olympus_Mons"), None);
    }
}
