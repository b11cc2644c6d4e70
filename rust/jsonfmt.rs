//! JSON text re-indented, for the CLI's `--json` output.
//!
//! Python's json module has no C path for `indent`: `json.dumps(data, indent=2)` runs its pure
//! Python encoder, 2.5 s for `pmon3 ls --json` of 10,000 processes. The C encoder writes the
//! compact text in a tenth of that, and [`indent`] turns it into exactly what `indent=2` gives:
//! one item per line, two spaces per level, `": "` after a key, `[]` and `{}` for empty
//! containers. String contents (escapes included) and numbers are copied as they are.
//!
//! [`take_member`] lifts one member out of an object's text unparsed: `pmon3 ls --json` prints the
//! reply's `data` as pmond wrote it instead of decoding 10,000 records to encode them again.

/// `text` (JSON, any whitespace between tokens) with `width` spaces per level, as Python's
/// `json.dumps(value, indent=width)` writes `value`. Text that is not JSON comes out re-spaced
/// but otherwise as it went in; nothing here validates.
pub fn indent(text: &str, width: usize) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + bytes.len() / 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + depth * width, b' ');
    };
    while i < bytes.len() {
        let c = bytes[i];
        i += 1;
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                out.push(c);
                if j < bytes.len() && bytes[j] == close {
                    out.push(close);
                    i = j + 1;
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            c if c.is_ascii_whitespace() => {}
            _ => out.push(c),
        }
    }
    // Only ASCII was inserted, at token boundaries: the bytes of the input stay whole.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The end (exclusive) of the JSON value starting at `start` (after any whitespace): a string, an
/// object or array with everything nested in it, or a scalar up to the next `,` `}` `]` or blank.
/// None if the text ends first. Structure only: the value is not validated.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = skip_blank(bytes, start);
    let first = *bytes.get(i)?;
    if first == b'"' {
        return string_end(bytes, i);
    }
    if first != b'{' && first != b'[' {
        while i < bytes.len()
            && !matches!(bytes[i], b',' | b'}' | b']')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        return Some(i);
    }
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end (exclusive, after the closing quote) of the string whose opening quote is at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_blank(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// For `text` a JSON object with a member `key` (its name written without escapes, as JSON
/// encoders write plain ASCII names): the object's text without that member, and the member's
/// value as it was written. None when `text` is not an object, has no such member or ends early.
/// The value is not validated: whoever trusts the writer may print it, anyone else parses it.
pub fn take_member(text: &str, key: &str) -> Option<(String, String)> {
    let bytes = text.as_bytes();
    let mut i = skip_blank(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        let member = skip_blank(bytes, i);
        match bytes.get(member)? {
            b'"' => {}
            _ => return None, // `}` (not found) or not JSON
        }
        let name_end = string_end(bytes, member)?;
        let colon = skip_blank(bytes, name_end);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_blank(bytes, colon + 1);
        let end = value_end(bytes, value_start)?;
        let next = skip_blank(bytes, end);
        let after = *bytes.get(next)?;
        if &bytes[member + 1..name_end - 1] == key.as_bytes() {
            let value = text.get(value_start..end)?.to_owned();
            // Drop the member with one comma: the one after it, else the one before it.
            let rest = if after == b',' {
                [text.get(..member)?, text.get(next + 1..)?].concat()
            } else {
                let before = text.get(..member)?.trim_end();
                let before = before.strip_suffix(',').unwrap_or(before);
                [before, text.get(next..)?].concat()
            };
            return Some((rest, value));
        }
        match after {
            b',' => i = next + 1,
            _ => return None, // `}`: no such member
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{indent, take_member};

    #[test]
    fn as_python_writes_it() {
        assert_eq!(indent("[]", 2), "[]");
        assert_eq!(indent("{}", 2), "{}");
        assert_eq!(indent("[ ]", 2), "[]");
        assert_eq!(indent("1", 2), "1");
        assert_eq!(indent("[1,2]", 2), "[\n  1,\n  2\n]");
        assert_eq!(
            indent(r#"{"a":[],"b":{"c":[1,{}]},"d":"x, \"y\": [z]\\"}"#, 2),
            "{\n  \"a\": [],\n  \"b\": {\n    \"c\": [\n      1,\n      {}\n    ]\n  },\n  \
             \"d\": \"x, \\\"y\\\": [z]\\\\\"\n}"
        );
        assert_eq!(indent("{\"é\":\"ü\"}", 4), "{\n    \"é\": \"ü\"\n}");
        assert_eq!(
            indent("[NaN,-Infinity,1e+300,null,true]", 1),
            "[\n NaN,\n -Infinity,\n 1e+300,\n null,\n true\n]"
        );
    }

    #[test]
    fn takes_one_member_out() {
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(
            take_member(
                r#"{"v":1,"id":"x","ok":true,"data":[{"a":"]}\"data\":"},2]}"#,
                "data"
            ),
            pair(
                r#"{"v":1,"id":"x","ok":true}"#,
                r#"[{"a":"]}\"data\":"},2]"#
            )
        );
        assert_eq!(
            take_member(r#"{"data":{"k":[]},"warnings":["w"]}"#, "data"),
            pair(r#"{"warnings":["w"]}"#, r#"{"k":[]}"#)
        );
        assert_eq!(take_member(r#"{"data":null}"#, "data"), pair("{}", "null"));
        assert_eq!(
            take_member(r#" { "x" : "data" , "data" : -1.5e3 , "y":2 } "#, "data"),
            pair(r#" { "x" : "data" ,  "y":2 } "#, "-1.5e3")
        );
        assert_eq!(
            take_member(r#"{"a":"\\","data":"\\\""}"#, "data"),
            pair(r#"{"a":"\\"}"#, r#""\\\"""#)
        );
        assert_eq!(
            take_member(r#"{"datum":1,"data":2}"#, "data"),
            pair(r#"{"datum":1}"#, "2")
        );
    }

    #[test]
    fn nothing_for_anything_else() {
        for text in [
            "",
            "[]",
            "{}",
            r#"{"a":1}"#,
            r#"{"a":{"data":1}}"#,
            r#"{"data":[1,2"#,
            r#"{"data":"open"#,
            r#"{"data""#,
            r#"{"a":1,"data":2"#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "\"data\"",
        ] {
            assert_eq!(take_member(text, "data"), None, "{text}");
        }
    }
}
