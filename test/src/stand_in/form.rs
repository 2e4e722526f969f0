//! Stripe's `application/x-www-form-urlencoded` bodies with nested keys, decoded into JSON.
//!
//! `metadata[plan]=pro` becomes `{"metadata":{"plan":"pro"}}`, `items[0][price]=price_1`
//! becomes `{"items":[{"price":"price_1"}]}` (an object whose keys are exactly `0..n` turns
//! into an array), `expand[]=a&expand[]=b` becomes `{"expand":["a","b"]}`. Every leaf is a
//! string. Strict: bad percent-escapes, non-UTF-8, malformed brackets, a key given twice and a
//! key used both as a value and as a hash are errors.

use domain::form::PercentError;
use serde_json::{Map, Value};

/// Most fields accepted in one body.
const MAX_FIELDS: usize = 1000;
/// Deepest nesting accepted (`a[b][c]` is depth 3).
const MAX_DEPTH: usize = 8;

/// Decodes a form body (or a query string) into a JSON object.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "The request body is not valid UTF-8.")?;
    let mut root = Map::new();
    for (n, pair) in text.split('&').filter(|p| !p.is_empty()).enumerate() {
        if n >= MAX_FIELDS {
            return Err(format!("Too many parameters (at most {MAX_FIELDS})."));
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)?;
        let value = percent_decode(value)?;
        let segments = split_key(&key)?;
        insert(&mut root, &key, &segments, value)?;
    }
    Ok(normalize(Value::Object(root)))
}

/// `a[b][0]` -> `["a", "b", "0"]`; `a[]` -> `["a", ""]` (append).
fn split_key(key: &str) -> Result<Vec<String>, String> {
    let malformed = || format!("Invalid parameter name: {key:?}.");
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() || head.contains(']') {
        return Err(malformed());
    }
    let mut segments = vec![head.to_string()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let close = inner.find(']').ok_or_else(malformed)?;
        let segment = &inner[..close];
        if segment.contains('[') {
            return Err(malformed());
        }
        segments.push(segment.to_string());
        rest = &inner[close + 1..];
    }
    if segments.len() > MAX_DEPTH {
        return Err(format!("Parameter {key:?} is nested too deeply."));
    }
    Ok(segments)
}

fn insert(
    map: &mut Map<String, Value>,
    key: &str,
    segments: &[String],
    value: String,
) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        return Err(format!("Invalid parameter name: {key:?}."));
    };
    let name = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        if map.contains_key(&name) {
            return Err(format!("The parameter {key:?} is given more than once."));
        }
        map.insert(name, Value::String(value));
        return Ok(());
    }
    match map.entry(name).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(inner) => insert(inner, key, rest, value),
        _ => Err(format!(
            "The parameter {key:?} conflicts with a parameter of the same name that is not a hash."
        )),
    }
}

/// Objects keyed exactly `0..n` become arrays, recursively.
fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: Map<String, Value> = map.into_iter().map(|(k, v)| (k, normalize(v))).collect();
            let n = map.len();
            let indices: Option<Vec<usize>> = map
                .keys()
                .map(|k| {
                    k.parse::<usize>()
                        .ok()
                        .filter(|i| *i < n && i.to_string() == *k)
                })
                .collect();
            match indices {
                Some(indices) if n > 0 => {
                    let mut items: Vec<(usize, Value)> = indices
                        .into_iter()
                        .zip(map.into_iter().map(|(_, v)| v))
                        .collect();
                    items.sort_by_key(|(i, _)| *i);
                    Value::Array(items.into_iter().map(|(_, v)| v).collect())
                }
                _ => Value::Object(map),
            }
        }
        other => other,
    }
}

/// Percent-decoding with `+` as a space, as forms and query strings use it
/// ([`domain::form::percent_decode`], with the stand-in's own messages).
pub(crate) fn percent_decode(s: &str) -> Result<String, String> {
    domain::form::percent_decode(s).map_err(|e| match e {
        PercentError::BadEscape => format!("Invalid percent-encoding in {s:?}."),
        PercentError::NotUtf8 => "A parameter is not valid UTF-8 once decoded.".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_nested_keys() {
        let body = "amount=500&currency=usd&metadata[account_id]=acct_x&metadata[note]=a+b%26c\
                    &items[0][price]=price_1&items[1][price]=price_2&items[1][quantity]=2\
                    &payment_method_data[shared_payment_granted_token]=spt_1&expand[]=x&expand[]=y";
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            json!({
                "amount": "500",
                "currency": "usd",
                "metadata": {"account_id": "acct_x", "note": "a b&c"},
                "items": [{"price": "price_1"}, {"price": "price_2", "quantity": "2"}],
                "payment_method_data": {"shared_payment_granted_token": "spt_1"},
                "expand": ["x", "y"],
            })
        );
        // Percent-encoded brackets, as most form encoders send them.
        assert_eq!(
            parse(b"metadata%5Bk%5D=v").unwrap(),
            json!({"metadata": {"k": "v"}})
        );
        assert_eq!(parse(b"").unwrap(), json!({}));
        // Indices that are not exactly 0..n stay a hash.
        assert_eq!(
            parse(b"items[1][price]=p").unwrap(),
            json!({"items": {"1": {"price": "p"}}})
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        for bad in [
            &b"a[b=1"[..],
            b"a]=1",
            b"[a]=1",
            b"a[b]c=1",
            b"a=%zz",
            b"a=%4",
            b"a=1&a=2",
            b"a=1&a[b]=2",
            b"a[b]=2&a=1",
            b"a=%ff",
            b"\xff=1",
            b"a[b][c][d][e][f][g][h][i]=1",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
