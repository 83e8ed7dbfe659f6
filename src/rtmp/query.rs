//! Splitting a stream name or app (`key?k=v&x`) into its name and its query
//! arguments, form-urlencoded rules, with a bounded count.
//!
//! Owns string splitting only; it does not read RTMP messages.

/// Most query arguments kept; more is an error (a client controls them).
pub const MAX_QUERY_ARGS: usize = 32;

/// `"name?a=1&b"` → `("name", [("a","1"), ("b","")])`; `None` when there
/// are more than [`MAX_QUERY_ARGS`] arguments.
pub fn split_query(raw: &str) -> Option<(String, Vec<(String, String)>)> {
    let Some((name, query)) = raw.split_once('?') else {
        return Some((raw.to_owned(), Vec::new()));
    };
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if args.len() == MAX_QUERY_ARGS {
            return None;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push((decode(k), decode(v)));
    }
    Some((name.to_owned(), args))
}

/// Percent-decodes with `+` as space; invalid escapes stay as written and
/// invalid UTF-8 is replaced.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match c {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(c),
            },
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes() {
        let (n, a) = split_query("live?key=a%20b+c&x&%zz=1").unwrap();
        assert_eq!(n, "live");
        let want = [("key", "a b c"), ("x", ""), ("%zz", "1")];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(a, want);
        assert_eq!(split_query("k").unwrap(), ("k".into(), vec![]));
        assert!(split_query(&format!("k?{}", "a&".repeat(33))).is_none());
    }
}
