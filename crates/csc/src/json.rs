//! Parsing request bodies into typed requests with messages that name the offending member,
//! in the spirit of the spec's own texts ("Missing (or invalid type) string parameter X").

use serde::de::DeserializeOwned;

/// Parse a JSON request body. An empty body is read as `{}` (CSC `info` is often sent bare).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    // A well-formed request parses once, without tracking the path; only a rejected one is
    // parsed again to name the parameter at fault.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("Malformed JSON body: {inner}")
        } else if path == "." {
            format!("Invalid request body: {}", strip_position(&inner.to_string()))
        } else {
            format!("Missing (or invalid type) parameter {path}: {}", strip_position(&inner.to_string()))
        }
    })?;
    de.end().map_err(|e| format!("Malformed JSON body: {e}"))?;
    Ok(value)
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        #[serde(rename = "credentialID")]
        credential_id: String,
    }

    #[test]
    fn messages_name_the_member() {
        let e = parse::<Req>(br#"{"credentialID": 5}"#).unwrap_err();
        assert!(e.contains("credentialID"), "{e}");
        let e = parse::<Req>(br#"{}"#).unwrap_err();
        assert!(e.contains("credentialID"), "{e}");
        let e = parse::<Req>(br#"{"credentialID": "x""#).unwrap_err();
        assert!(e.starts_with("Malformed JSON"), "{e}");
        let e = parse::<Req>(br#"{"credentialID": "x"} trailing"#).unwrap_err();
        assert!(e.starts_with("Malformed JSON"), "{e}");
    }
}
