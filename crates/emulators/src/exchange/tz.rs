//! Windows time-zone ids (what EWS speaks) ↔ IANA names (what chrono-tz and Salesforce's
//! TimeZoneSidKey speak). The table follows CLDR's windowsZones.xml "001" (territory-neutral)
//! mappings for the zones sales organisations commonly use; the first IANA name of a Windows
//! zone is its canonical one, further rows are aliases accepted on the IANA → Windows side.

use chrono_tz::Tz;

const ZONES: &[(&str, &str)] = &[
    ("UTC", "Etc/UTC"),
    ("UTC", "UTC"),
    ("UTC", "Etc/GMT"),
    ("GMT Standard Time", "Europe/London"),
    ("GMT Standard Time", "Europe/Dublin"),
    ("GMT Standard Time", "Europe/Lisbon"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("W. Europe Standard Time", "Europe/Amsterdam"),
    ("W. Europe Standard Time", "Europe/Rome"),
    ("W. Europe Standard Time", "Europe/Vienna"),
    ("W. Europe Standard Time", "Europe/Zurich"),
    ("W. Europe Standard Time", "Europe/Stockholm"),
    ("W. Europe Standard Time", "Europe/Oslo"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Romance Standard Time", "Europe/Brussels"),
    ("Romance Standard Time", "Europe/Madrid"),
    ("Romance Standard Time", "Europe/Copenhagen"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central Europe Standard Time", "Europe/Prague"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("GTB Standard Time", "Europe/Athens"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("FLE Standard Time", "Europe/Helsinki"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Kolkata"),
    ("India Standard Time", "Asia/Calcutta"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("China Standard Time", "Asia/Shanghai"),
    ("China Standard Time", "Asia/Hong_Kong"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("AUS Eastern Standard Time", "Australia/Melbourne"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Eastern Standard Time", "America/New_York"),
    ("Eastern Standard Time", "America/Toronto"),
    ("Eastern Standard Time", "America/Detroit"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Mountain Standard Time", "America/Denver"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Pacific Standard Time", "America/Vancouver"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Pacific SA Standard Time", "America/Santiago"),
];

/// The IANA name for a Windows zone id.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(windows))
        .map(|(_, i)| *i)
}

/// The Windows zone id for an IANA name (canonical names and the aliases above).
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    ZONES
        .iter()
        .find(|(_, i)| i.eq_ignore_ascii_case(iana))
        .map(|(w, _)| *w)
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
        for (w, i) in ZONES {
            assert!(i.parse::<Tz>().is_ok(), "{i} is not an IANA zone");
            let canonical = windows_to_iana(w).unwrap();
            assert_eq!(iana_to_windows(canonical), Some(*w));
        }
    }
}
