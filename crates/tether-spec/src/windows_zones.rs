//! Windows time-zone ids ↔ IANA zone names, as CLDR publishes them in windowsZones.xml.
//!
//! Each `<mapZone other="WINDOWS" territory="T" type="IANA IANA…"/>` row says which IANA zones
//! a Windows zone stands for in territory T; territory "001" names the one zone the Windows id
//! means without a territory. Names are CLDR's own (it keeps tzdb's older spellings, e.g.
//! `Asia/Calcutta`, `Europe/Kiev`); nothing is added to what the file says.
//!
//! Lookups ignore ASCII case: neither Windows ids nor tzdb names differ only in case.

use std::sync::OnceLock;

/// The published file, embedded as is.
const WINDOWS_ZONES_XML: &str = include_str!("../data/windowsZones.xml");

/// One `mapZone` row, with its space-separated `type` list split.
#[derive(Debug)]
struct MapZone {
    windows: &'static str,
    territory: &'static str,
    iana: Vec<&'static str>,
}

fn rows() -> &'static [MapZone] {
    static ROWS: OnceLock<Vec<MapZone>> = OnceLock::new();
    ROWS.get_or_init(|| {
        parse(WINDOWS_ZONES_XML)
            .unwrap_or_else(|e| panic!("embedded windowsZones.xml is not as published: {e}"))
    })
}

/// The IANA zone a Windows zone id means (its territory "001" row), in CLDR's spelling.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    rows()
        .iter()
        .find(|r| r.territory == "001" && r.windows.eq_ignore_ascii_case(windows))
        .and_then(|r| r.iana.first().copied())
}

/// The Windows zone id for an IANA zone name CLDR lists in any territory.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    rows()
        .iter()
        .find(|r| r.iana.iter().any(|i| i.eq_ignore_ascii_case(iana)))
        .map(|r| r.windows)
}

/// Every Windows zone id CLDR maps, once each, in the file's order.
pub fn windows_zone_ids() -> impl Iterator<Item = &'static str> {
    rows()
        .iter()
        .filter(|r| r.territory == "001")
        .map(|r| r.windows)
}

/// The `mapZone` rows of windowsZones.xml. Comments are skipped; any other markup is passed
/// over, so only the rows' shape matters.
fn parse(xml: &'static str) -> Result<Vec<MapZone>, String> {
    let mut rows = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").ok_or("a comment is not closed")?;
            rest = &comment[end + 3..];
        } else if let Some(tag) = rest.strip_prefix("<mapZone") {
            let end = tag.find("/>").ok_or("a mapZone element is not closed")?;
            rows.push(map_zone(&tag[..end])?);
            rest = &tag[end + 2..];
        } else {
            rest = &rest[1..];
        }
    }
    if rows.is_empty() {
        return Err("no mapZone rows".into());
    }
    Ok(rows)
}

/// One row from the attributes of its tag (`other="…" territory="…" type="…"`).
fn map_zone(attrs: &'static str) -> Result<MapZone, String> {
    let (mut windows, mut territory, mut iana) = (None, None, None);
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without value in {attrs:?}"))?;
        let name = rest[..eq].trim();
        let value = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("unquoted attribute {name} in {attrs:?}"))?;
        let close = value
            .find('"')
            .ok_or_else(|| format!("unclosed {name} in {attrs:?}"))?;
        let (value, after) = (&value[..close], &value[close + 1..]);
        if value.contains('&') {
            return Err(format!("entity in {name} of {attrs:?}"));
        }
        match name {
            "other" => windows = Some(value),
            "territory" => territory = Some(value),
            "type" => iana = Some(value.split_whitespace().collect::<Vec<_>>()),
            _ => {}
        }
        rest = after.trim_start();
    }
    match (windows, territory, iana) {
        (Some(windows), Some(territory), Some(iana)) if !iana.is_empty() => Ok(MapZone {
            windows,
            territory,
            iana,
        }),
        _ => Err(format!(
            "mapZone without other, territory or type: {attrs:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_missing_from_the_old_38_zone_table_are_known() {
        assert_eq!(windows_to_iana("Taipei Standard Time"), Some("Asia/Taipei"));
        assert_eq!(
            windows_to_iana("E. Africa Standard Time"),
            Some("Africa/Nairobi")
        );
        assert_eq!(iana_to_windows("Asia/Taipei"), Some("Taipei Standard Time"));
        assert_eq!(
            iana_to_windows("Africa/Nairobi"),
            Some("E. Africa Standard Time")
        );
    }

    #[test]
    fn cldr_spellings_are_kept_and_nothing_is_invented() {
        // CLDR lists only tzdb's older name for India and Kyiv.
        assert_eq!(
            windows_to_iana("India Standard Time"),
            Some("Asia/Calcutta")
        );
        assert_eq!(
            iana_to_windows("Asia/Calcutta"),
            Some("India Standard Time")
        );
        assert_eq!(iana_to_windows("Asia/Kolkata"), None);
        assert_eq!(windows_to_iana("FLE Standard Time"), Some("Europe/Kiev"));
        assert_eq!(iana_to_windows("Europe/Kyiv"), None);
        assert_eq!(windows_to_iana("No Such Zone"), None);
        assert_eq!(iana_to_windows("Mars/Olympus_Mons"), None);
    }

    #[test]
    fn any_territory_and_every_name_of_a_type_list_maps_back() {
        // Territory "US", the fourth of several names.
        assert_eq!(
            iana_to_windows("America/Indiana/Tell_City"),
            Some("Central Standard Time")
        );
        // The last name, followed by a stray space in the published file.
        assert_eq!(
            iana_to_windows("America/Chihuahua"),
            Some("Central Standard Time (Mexico)")
        );
        // Territory "ZZ" only.
        assert_eq!(iana_to_windows("Etc/GMT"), Some("UTC"));
        assert_eq!(windows_to_iana("utc"), Some("Etc/UTC"));
    }

    #[test]
    fn every_windows_id_resolves_and_round_trips() {
        let ids: Vec<_> = windows_zone_ids().collect();
        assert!(ids.len() > 130, "only {} Windows ids", ids.len());
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "a Windows id has two 001 rows");
        for id in ids {
            let iana = windows_to_iana(id).unwrap_or_else(|| panic!("{id} has no zone"));
            assert_eq!(iana_to_windows(iana), Some(id), "{iana}");
        }
        // Every row's Windows id has its 001 row.
        for r in rows() {
            assert!(windows_to_iana(r.windows).is_some(), "{}", r.windows);
        }
    }

    #[test]
    fn the_scanner_reads_every_row_of_the_file() {
        let rows = rows();
        assert_eq!(rows.len(), WINDOWS_ZONES_XML.matches("<mapZone ").count());
        assert!(
            rows.iter()
                .all(|r| !r.windows.is_empty() && !r.territory.is_empty())
        );
    }

    #[test]
    fn malformed_rows_are_refused() {
        assert!(parse("<mapZone other=\"A\" territory=\"001\"/>").is_err());
        assert!(parse("<mapZone other=\"A\" territory=\"001\" type=\"X/Y\"").is_err());
        assert!(parse("<mapZone other=A territory=\"001\" type=\"X/Y\"/>").is_err());
        assert!(parse("<!-- <mapZone other=\"A\" territory=\"001\" type=\"X\"/> -->").is_err());
        let ok = parse("<m><mapZone other=\"A\" territory=\"001\" type=\" X/Y Z/W \"/></m>");
        assert_eq!(ok.unwrap()[0].iana, ["X/Y", "Z/W"]);
    }
}
