//! The CSV a partner sends to open claims in a batch: RFC 4180 (commas,
//! fields in double quotes may hold commas, quotes doubled, line breaks),
//! a header row naming the columns, in any order.

/// Rows of a CSV text as maps from the header's names to values; an empty
/// value is absent. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<std::collections::BTreeMap<String, String>>, String> {
    let records = records(text)?;
    let mut rows = records.into_iter();
    let Some((_, header)) = rows.next() else {
        return Err("the CSV is empty: the first line names the columns".into());
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    for (line, fields) in rows {
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if fields.len() != header.len() {
            return Err(format!(
                "line {line}: {} fields where the header names {}",
                fields.len(),
                header.len()
            ));
        }
        out.push(
            header
                .iter()
                .cloned()
                .zip(fields)
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k, v.trim().to_owned()))
                .collect(),
        );
    }
    Ok(out)
}

/// The records of a CSV text, each with the line it starts on.
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut fields)));
                line += 1;
                start = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_are_read_by_the_header_with_quotes_and_line_breaks() {
        let text = "kind,order_id,amount_minor,note\r\n\
                    untracked,A-1,12500,\"paid by card, twice \"\"really\"\"\"\n\
                    \n\
                    untracked,A-2,300,\"two\nlines\"\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["order_id"], "A-1");
        assert_eq!(rows[0]["note"], "paid by card, twice \"really\"");
        assert_eq!(rows[1]["note"], "two\nlines");
        assert_eq!(rows[1]["amount_minor"], "300");
    }

    #[test]
    fn a_short_row_or_an_open_quote_names_its_line() {
        assert_eq!(
            parse("kind,order_id\nuntracked\n").unwrap_err(),
            "line 2: 1 fields where the header names 2"
        );
        assert_eq!(
            parse("kind,note\nuntracked,\"open\n").unwrap_err(),
            "line 2: a quoted field is not closed"
        );
        assert_eq!(
            parse("").unwrap_err(),
            "the CSV is empty: the first line names the columns"
        );
    }

    proptest! {
        /// Any text: rows or an error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }
    }
}
