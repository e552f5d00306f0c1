//! CSV for Bulk API 2.0 jobs, comma-delimited with LF line endings (the job's defaults):
//! RFC 4180 quoting, as the Bulk API 2.0 Developer Guide's "Prepare CSV Files" asks. A value
//! is quoted when it holds a comma, a double quote (doubled), a line break, or leading or
//! trailing space (values are not trimmed, but quoting makes that explicit).

/// One CSV line of `values`, LF-terminated.
pub(crate) fn write_row<S: AsRef<str>>(out: &mut String, values: &[S]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v.as_ref();
        let quote = v.contains([',', '"', '\n', '\r']) || v.trim() != v;
        if quote {
            out.push('"');
            for c in v.chars() {
                if c == '"' {
                    out.push('"');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    out.push('\n');
}

/// Every row of a CSV answer (the header first). Accepts LF or CRLF between rows.
pub(crate) fn read(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut chars = text.chars().peekable();
    // Inside quotes; and whether the current value has begun at all (for the last row).
    let (mut quoted, mut started) = (false, false);
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    value.push('"');
                }
                '"' => {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                        return Err(format!(
                            "row {}: text after a closing quote",
                            rows.len() + 1
                        ));
                    }
                }
                _ => value.push(c),
            }
            continue;
        }
        match c {
            '"' if value.is_empty() => {
                quoted = true;
                started = true;
            }
            ',' => {
                row.push(std::mem::take(&mut value));
                started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut value));
                rows.push(std::mem::take(&mut row));
                started = false;
            }
            _ => {
                value.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err(format!("row {}: a quoted value never ends", rows.len() + 1));
    }
    if started || !row.is_empty() {
        row.push(value);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_quoting() {
        let values = [
            "plain",
            "a, b",
            "say \"hi\"",
            "two\nlines",
            " padded ",
            "",
            "Zoë",
        ];
        let mut text = String::new();
        write_row(&mut text, &["h1", "h2", "h3", "h4", "h5", "h6", "h7"]);
        write_row(&mut text, &values);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "plain,\"a, b\",\"say \"\"hi\"\"\",\"two"
        );
        let rows = read(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], values);
    }

    #[test]
    fn answers_with_crlf_every_value_quoted_or_no_final_break_read_alike() {
        let a = read("\"sf__Id\",\"sf__Created\"\r\n\"003A\",\"true\"\r\n").unwrap();
        let b = read("sf__Id,sf__Created\n003A,true").unwrap();
        assert_eq!(a, b);
        assert_eq!(a[1], vec!["003A", "true"]);
        assert_eq!(read("").unwrap(), Vec::<Vec<String>>::new());
        assert_eq!(read("a,\n").unwrap(), vec![vec!["a", ""]]);
        assert!(read("\"open").is_err());
        assert!(read("\"a\"b,c\n").is_err());
    }
}
