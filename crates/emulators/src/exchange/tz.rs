//! Windows time-zone ids (what EWS speaks) resolved to tzdb rules, through CLDR's complete
//! windowsZones mapping (tether-spec) and chrono-tz. Every Windows zone CLDR maps is known.
//! CLDR spells some zones by names tzdb has since replaced (`Asia/Calcutta` for
//! `Asia/Kolkata`); tzdb's own `backward` file, embedded as published (release 2025b, the
//! one chrono-tz 0.10.4 is built from), links the two spellings.

use chrono_tz::Tz;
use tether_spec::windows_zones;

const TZDB_BACKWARD: &str = include_str!("../../data/tzdb-backward");

/// The (target, link name) pairs of the `Link TARGET LINK-NAME` lines.
fn backward_links() -> impl Iterator<Item = (&'static str, &'static str)> {
    TZDB_BACKWARD.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some("Link"), Some(target), Some(link)) => Some((target, link)),
            _ => None,
        }
    })
}

/// The tzdb zone of a Windows zone id.
pub fn windows_tz(windows: &str) -> Option<Tz> {
    windows_zones::windows_to_iana(windows)?.parse().ok()
}

/// The Windows zone id of an IANA zone name, spelt as CLDR spells it or as the other end
/// of a tzdb link.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    windows_zones::iana_to_windows(iana).or_else(|| {
        backward_links().find_map(|(target, link)| {
            let other = if target.eq_ignore_ascii_case(iana) {
                link
            } else if link.eq_ignore_ascii_case(iana) {
                target
            } else {
                return None;
            };
            windows_zones::iana_to_windows(other)
        })
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
        for (name, windows) in [
            ("Asia/Kolkata", "India Standard Time"),
            ("Asia/Calcutta", "India Standard Time"),
            ("Europe/Kyiv", "FLE Standard Time"),
            ("America/Argentina/Cordoba", "Argentina Standard Time"),
            ("UTC", "UTC"),
            ("Europe/Berlin", "W. Europe Standard Time"),
        ] {
            assert_eq!(iana_to_windows(name), Some(windows), "{name}");
        }
        assert_eq!(iana_to_windows("Mars/Olympus_Mons"), None);
        assert!(backward_links().count() > 200);
    }
}
