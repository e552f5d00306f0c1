//! The CSV of Bulk API 2.0 job data and results ("Prepare CSV Files", "Valid CSV Record
//! Rows"): RFC 4180 with the job's column delimiter and line ending. A value holding the
//! delimiter, a line break or a double quote is quoted, inner quotes doubled; values are not
//! trimmed, and a space between a closing quote and the delimiter is an error for the row.

/// The job's `lineEnding`: the only line break the data may use between rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn parse(s: &str) -> Option<LineEnding> {
        match s {
            "LF" => Some(LineEnding::Lf),
            "CRLF" => Some(LineEnding::Crlf),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }
    fn text(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }
}

/// The job's `columnDelimiter` name and its character.
pub fn delimiter(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "BACKQUOTE" => b'`',
        "CARET" => b'^',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "TAB" => b'\t',
        _ => return None,
    })
}

/// Rows of the uploaded data, the header first. An error says what is wrong and where.
pub fn parse(data: &[u8], sep: u8, ending: LineEnding) -> Result<Vec<Vec<String>>, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("the data is not UTF-8: {e}"))?;
    let bytes = text.as_bytes();
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut i = 0;
    let line = |rows: &Vec<Vec<String>>| rows.len() + 1;
    while i <= bytes.len() {
        // At the start of a field.
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => {
                        return Err(format!("row {}: a quoted value is not closed", line(&rows)));
                    }
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        field.push(b);
                        i += 1;
                    }
                }
            }
            let at_end = i == bytes.len()
                || bytes[i] == sep
                || bytes[i..].starts_with(ending.text().as_bytes());
            if !at_end {
                return Err(format!(
                    "row {}: characters after a closing double quote",
                    line(&rows)
                ));
            }
        } else {
            while i < bytes.len() && bytes[i] != sep && bytes[i] != b'\n' {
                if bytes[i] == b'"' {
                    return Err(format!(
                        "row {}: a double quote inside an unquoted value",
                        line(&rows)
                    ));
                }
                field.push(bytes[i]);
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'\n' {
                let cr = field.last() == Some(&b'\r');
                match (ending, cr) {
                    (LineEnding::Crlf, true) => {
                        field.pop();
                    }
                    (LineEnding::Crlf, false) | (LineEnding::Lf, true) => {
                        return Err(format!(
                            "LineEnding is invalid on user data. Current LineEnding setting is {}",
                            ending.name()
                        ));
                    }
                    (LineEnding::Lf, false) => {}
                }
            }
        }
        row.push(String::from_utf8_lossy(&field).into_owned());
        field.clear();
        if i >= bytes.len() {
            break;
        }
        if bytes[i] == sep {
            i += 1;
            continue;
        }
        // A line ending ends the row (the unquoted scan stops at its `\n`).
        i += if bytes[i] == b'\r' { 2 } else { 1 };
        rows.push(std::mem::take(&mut row));
        if i >= bytes.len() {
            break;
        }
    }
    // A last row without a line ending (or none at all).
    if !(row.is_empty() || row.len() == 1 && row[0].is_empty()) {
        rows.push(row);
    }
    Ok(rows)
}

/// Result CSV as Salesforce writes it: every value quoted.
pub fn write(rows: &[Vec<String>], sep: u8, ending: LineEnding) -> String {
    let mut out = String::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(sep as char);
            }
            out.push('"');
            out.push_str(&v.replace('"', "\"\""));
            out.push('"');
        }
        out.push_str(ending.text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(s: &str) -> Vec<Vec<String>> {
        parse(s.as_bytes(), b',', LineEnding::Lf).unwrap()
    }

    #[test]
    fn quoted_values_keep_delimiters_breaks_and_quotes() {
        let data = "FirstName,Description\nTom,\"Self-described as \"\"the top\"\", West\"\nIan,\"two\nlines\"\n";
        assert_eq!(
            rows(data),
            vec![
                vec!["FirstName", "Description"],
                vec!["Tom", "Self-described as \"the top\", West"],
                vec!["Ian", "two\nlines"],
            ]
        );
        let again = write(&rows(data), b',', LineEnding::Lf);
        assert_eq!(rows(&again), rows(data));
    }

    #[test]
    fn values_are_not_trimmed_and_a_space_after_a_quote_is_refused() {
        assert_eq!(rows("a,b\nJohn, Smith\n")[1], vec!["John", " Smith"]);
        assert!(parse(b"a,b\n\"John\" ,x\n", b',', LineEnding::Lf).is_err());
        assert!(parse(b"a\n\"open\n", b',', LineEnding::Lf).is_err());
    }

    #[test]
    fn the_line_ending_must_be_the_jobs() {
        let crlf = b"a,b\r\n1,2\r\n";
        assert_eq!(
            parse(crlf, b',', LineEnding::Crlf).unwrap(),
            vec![vec!["a", "b"], vec!["1", "2"]]
        );
        let e = parse(crlf, b',', LineEnding::Lf).unwrap_err();
        assert!(e.contains("LineEnding is invalid"), "{e}");
        assert!(parse(b"a,b\n1,2\n", b',', LineEnding::Crlf).is_err());
        assert_eq!(
            parse(b"a|b\n1|\n", b'|', LineEnding::Lf).unwrap()[1],
            vec!["1", ""]
        );
    }
}
