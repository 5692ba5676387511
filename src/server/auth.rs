//! SigV4 verification for the shard server (`--credentials-file`): every request must
//! carry an `Authorization` header signed, as AWS does, over the canonical request
//! (method, path, query, the signed headers, the SHA-256 of the real body) with the
//! secret of a known access key, within five minutes of the server's clock. The
//! answers are AWS's: `MissingAuthenticationTokenException` unsigned,
//! `IncompleteSignatureException` for a malformed header, `UnrecognizedClientException`
//! for an unknown key, `InvalidSignatureException` for a wrong signature or date.
//!
//! Without the file, requests are not checked (any key, signed or not, is served).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::{ErrorKind, KinesisError};
use crate::kinesis::digest::hex;

/// How far a request's date may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// One identity of the credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub access_key_id: String,
    secret: String,
    /// The account it belongs to, when the file names one.
    pub account_id: Option<String>,
    /// Temporary credentials' session token, which every request must then carry.
    session_token: Option<String>,
}

/// The identities requests may be signed by.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    by_key: HashMap<String, Identity>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    #[error("cannot read the credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line}: expected ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID (12 digits)] [SESSION_TOKEN]"
    )]
    Line { path: PathBuf, line: usize },
    #[error("{path} names no identity; add a line ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]")]
    Empty { path: PathBuf },
}

impl Identities {
    /// Identities from `(access key id, secret)` pairs (tests, embedding).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Identities {
        let by_key = pairs
            .into_iter()
            .map(|(key, secret)| {
                let identity = Identity {
                    access_key_id: key.to_owned(),
                    secret: secret.to_owned(),
                    account_id: None,
                    session_token: None,
                };
                (key.to_owned(), identity)
            })
            .collect();
        Identities { by_key }
    }

    /// Reads `ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]` lines; blank lines and lines
    /// starting with `#` are skipped.
    pub fn load(path: &Path) -> Result<Identities, CredentialsFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut by_key = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = || CredentialsFileError::Line {
                path: path.to_owned(),
                line: index + 1,
            };
            let is_account = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
            let (key, secret, account, token) = match fields.as_slice() {
                [key, secret] => (key, secret, None, None),
                [key, secret, account] if is_account(account) => {
                    (key, secret, Some(account.to_string()), None)
                }
                [key, secret, token] => (key, secret, None, Some(token.to_string())),
                [key, secret, account, token] if is_account(account) => (
                    key,
                    secret,
                    Some(account.to_string()),
                    Some(token.to_string()),
                ),
                _ => return Err(bad()),
            };
            by_key.insert(
                key.to_string(),
                Identity {
                    access_key_id: key.to_string(),
                    secret: secret.to_string(),
                    account_id: account,
                    session_token: token,
                },
            );
        }
        if by_key.is_empty() {
            return Err(CredentialsFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Identities { by_key })
    }

    /// Checks a request's signature (an `Authorization` header, or a presigned URL's
    /// query); the identity that signed it.
    pub fn verify(&self, request: &Signed<'_>, now: SystemTime) -> Result<&Identity, KinesisError> {
        let parts = Authorization::of(request)?;
        let invalid_token = || {
            error(
                ErrorKind::UnrecognizedClient,
                "The security token included in the request is invalid.",
            )
        };
        let Some(identity) = self.by_key.get(&parts.access_key_id) else {
            return Err(invalid_token());
        };
        // Temporary credentials carry their session token; long-term keys carry none.
        if identity.session_token.as_deref() != session_token(request).as_deref() {
            return Err(invalid_token());
        }
        match parts.expires {
            None => check_date(&parts.date, now)?,
            Some(seconds) => check_expiry(&parts.date, seconds, now)?,
        }
        let expected = signature(request, &parts, &identity.secret);
        if !constant_time_eq(expected.as_bytes(), parts.signature.as_bytes()) {
            return Err(error(
                ErrorKind::InvalidSignature,
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ));
        }
        Ok(identity)
    }
}

/// Without a credentials file no signature is checked, but a request must still be
/// signed in SigV4's shape (as local emulators require): the errors an unsigned or
/// malformed request gets from AWS.
pub fn check_shape(request: &Signed<'_>) -> Result<(), KinesisError> {
    Authorization::of(request).map(|_| ())
}

/// The access key a request says it is signed with, checked or not.
pub fn claimed_access_key(request: &Signed<'_>) -> Option<String> {
    Authorization::of(request)
        .ok()
        .map(|parts| parts.access_key_id)
}

/// The region a request's credential scope names, checked or not.
pub fn claimed_region(request: &Signed<'_>) -> Option<String> {
    Authorization::of(request)
        .ok()
        .and_then(|parts| parts.scope.split('/').nth(1).map(str::to_owned))
}

/// The session token a request carries, in its header or its presigned query.
fn session_token(request: &Signed<'_>) -> Option<String> {
    match request.headers.get("x-amz-security-token") {
        Some(token) => Some(String::from_utf8_lossy(token.as_bytes()).into_owned()),
        None => query_pairs(request.query)
            .find(|(name, _)| name == "X-Amz-Security-Token")
            .map(|(_, value)| value),
    }
}

/// A query's parameters, decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(name), decode(value))
    })
}

/// The operation parameters of a presigned request's query (all but `X-Amz-*`), which
/// a presigned call carries instead of a body, as a JSON object.
pub fn presigned_parameters(query: &str) -> Option<Vec<u8>> {
    if !query_pairs(query).any(|(name, _)| name == "X-Amz-Algorithm") {
        return None;
    }
    let mut object = serde_json::Map::new();
    for (name, value) in query_pairs(query).filter(|(n, _)| !n.starts_with("X-Amz-")) {
        // Integer members are written as numbers, as a JSON body would have them.
        let value = match value.parse::<i64>() {
            Ok(number) if INTEGER_MEMBERS.contains(&name.as_str()) => {
                serde_json::Value::from(number)
            }
            _ => serde_json::Value::String(value),
        };
        object.insert(name, value);
    }
    serde_json::to_vec(&object).ok()
}

/// Kinesis's integer request members.
const INTEGER_MEMBERS: &[&str] = &[
    "Limit",
    "ShardCount",
    "TargetShardCount",
    "RetentionPeriodHours",
    "MaxResults",
    "MaxRecordSizeInKiB",
];

fn error(kind: ErrorKind, message: &str) -> KinesisError {
    KinesisError {
        kind,
        message: message.to_owned(),
    }
}

/// What a signature covers.
pub struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Where the host is when there is no `Host` header (HTTP/2's `:authority`).
    pub authority: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The parts of a signature (from an `Authorization` header or a presigned query),
/// and the request date it signs.
struct Authorization {
    access_key_id: String,
    /// `DATE/REGION/SERVICE/aws4_request`.
    scope: String,
    signed_headers: Vec<String>,
    signature: String,
    /// `YYYYMMDD'T'HHMMSS'Z'`.
    date: String,
    /// A presigned URL's lifetime in seconds (its call's parameters are in the query,
    /// and it signs the empty body as any request signs its body).
    expires: Option<u64>,
}

/// Longest a presigned URL may live (seven days).
const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

impl Authorization {
    fn of(request: &Signed<'_>) -> Result<Authorization, KinesisError> {
        if let Some(header) = request.headers.get(http::header::AUTHORIZATION) {
            return Authorization::parse(header.to_str().unwrap_or(""), request.headers);
        }
        if query_pairs(request.query).any(|(name, _)| name == "X-Amz-Algorithm") {
            return Authorization::presigned(request.query);
        }
        Err(error(
            ErrorKind::MissingAuthenticationToken,
            "Missing Authentication Token",
        ))
    }

    fn presigned(query: &str) -> Result<Authorization, KinesisError> {
        let params: HashMap<String, String> = query_pairs(query).collect();
        let get = |name: &str| params.get(name).cloned();
        let (Some(algorithm), Some(credential), Some(signature), Some(signed_headers), Some(date)) = (
            get("X-Amz-Algorithm"),
            get("X-Amz-Credential"),
            get("X-Amz-Signature"),
            get("X-Amz-SignedHeaders"),
            get("X-Amz-Date"),
        ) else {
            return Err(error(
                ErrorKind::IncompleteSignature,
                "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-SignedHeaders', 'X-Amz-Date'. Re-examine the query-string parameters.",
            ));
        };
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(error(
                ErrorKind::IncompleteSignature,
                &format!("Unsupported algorithm: {algorithm}"),
            ));
        }
        let expires = get("X-Amz-Expires")
            .and_then(|e| e.parse::<u64>().ok())
            .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
            .ok_or_else(|| {
                error(
                    ErrorKind::IncompleteSignature,
                    &format!(
                        "X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES_SECS}."
                    ),
                )
            })?;
        let (access_key_id, scope) = split_credential(&credential, &credential)?;
        Ok(Authorization {
            access_key_id,
            scope,
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature,
            date,
            expires: Some(expires),
        })
    }

    fn parse(header: &str, headers: &HeaderMap) -> Result<Authorization, KinesisError> {
        let incomplete = |message: String| error(ErrorKind::IncompleteSignature, &message);
        let Some(rest) = header.strip_prefix("AWS4-HMAC-SHA256 ") else {
            let algorithm = header.split_whitespace().next().unwrap_or("");
            return Err(incomplete(format!(
                "Unsupported authorization type: {algorithm}"
            )));
        };
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(value) = part.strip_prefix("Credential=") {
                credential = Some(value);
            } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(value);
            } else if let Some(value) = part.strip_prefix("Signature=") {
                signature = Some(value);
            }
        }
        let date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.len() == 16);
        let mut missing = Vec::new();
        for (name, present) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed_headers.is_some()),
        ] {
            if !present {
                missing.push(format!("Authorization header requires '{name}' parameter."));
            }
        }
        if date.is_none() {
            missing.push(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                    .to_owned(),
            );
        }
        let (Some(credential), Some(signed_headers), Some(signature), Some(date)) =
            (credential, signed_headers, signature, date)
        else {
            missing.push(format!("Authorization={header}"));
            return Err(incomplete(missing.join(" ")));
        };
        let (access_key_id, scope) =
            split_credential(credential, &format!("Authorization={header}"))?;
        Ok(Authorization {
            access_key_id,
            scope,
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
            date: date.to_owned(),
            expires: None,
        })
    }
}

/// `KEY/DATE/REGION/SERVICE/aws4_request` as the key and the scope; `shown` is what
/// the error quotes.
fn split_credential(credential: &str, shown: &str) -> Result<(String, String), KinesisError> {
    let incomplete = |message: String| error(ErrorKind::IncompleteSignature, &message);
    let Some((access_key_id, scope)) = credential.split_once('/') else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region. {shown}"
        )));
    };
    if scope.split('/').count() != 4 || !scope.ends_with("/aws4_request") {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request'. {shown}"
        )));
    }
    Ok((access_key_id.to_owned(), scope.to_owned()))
}

/// A presigned URL is good from its date (give or take the clock skew) until its date
/// plus its lifetime.
fn check_expiry(date: &str, seconds: u64, now: SystemTime) -> Result<(), KinesisError> {
    let Some(signed) = parse_date(date) else {
        return check_date(date, now);
    };
    let now = time::OffsetDateTime::from(now);
    let expiry = signed + time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    if expiry < now {
        return Err(error(
            ErrorKind::InvalidSignature,
            &format!(
                "Signature expired: {} is now earlier than {}",
                show_date(expiry),
                show_date(now)
            ),
        ));
    }
    let skew = time::Duration::try_from(MAX_SKEW).unwrap_or(time::Duration::minutes(5));
    if signed > now + skew {
        return check_date(date, SystemTime::from(now));
    }
    Ok(())
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
fn parse_date(date: &str) -> Option<time::OffsetDateTime> {
    let b = date.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| date.get(range)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = time::Date::from_calendar_date(
        i32::try_from(number(0..4)?).ok()?,
        month,
        u8::try_from(number(6..8)?).ok()?,
    )
    .ok()?;
    let at = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(day, at).assume_utc())
}

fn show_date(at: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The request date must be within five minutes of now.
fn check_date(date: &str, now: SystemTime) -> Result<(), KinesisError> {
    let Some(signed) = parse_date(date) else {
        return Err(error(
            ErrorKind::IncompleteSignature,
            &format!(
                "Date must be in ISO-8601 'basic format'. Got '{date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ),
        ));
    };
    let now = time::OffsetDateTime::from(now);
    let skew = time::Duration::try_from(MAX_SKEW).unwrap_or(time::Duration::minutes(5));
    if signed < now - skew {
        return Err(error(
            ErrorKind::InvalidSignature,
            &format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                show_date(signed),
                show_date(now - skew),
                show_date(now)
            ),
        ));
    }
    if signed > now + skew {
        return Err(error(
            ErrorKind::InvalidSignature,
            &format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                show_date(signed),
                show_date(now + skew),
                show_date(now)
            ),
        ));
    }
    Ok(())
}

/// The signature the request should carry, as hex.
fn signature(request: &Signed<'_>, parts: &Authorization, secret: &str) -> String {
    let payload_hash = match request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some(declared) => declared.to_owned(),
        None => hex(&Sha256::digest(request.body)),
    };
    let mut canonical_headers = String::new();
    for name in &parts.signed_headers {
        let name = name.as_str();
        let values: Vec<String> = match (name, request.headers.get_all(name).iter().next()) {
            // HTTP/2 has no Host header but the `:authority` pseudo-header, which
            // the JavaScript SDK (HTTP/2 by default for Kinesis) signs by that name.
            ("host" | ":authority", None) => {
                request.authority.map(str::to_owned).into_iter().collect()
            }
            _ => request
                .headers
                .get_all(name)
                .iter()
                .map(|v| collapse(&String::from_utf8_lossy(v.as_bytes())))
                .collect(),
        };
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query, parts.expires.is_some()),
        canonical_headers,
        parts.signed_headers.join(";"),
        payload_hash
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        parts.date,
        parts.scope,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in parts.scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, string_to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Trimmed, with runs of spaces as one.
fn collapse(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The path as signers write it: each segment URI-encoded (AWS services other than S3
/// encode the already-encoded path once more, as the SDKs do).
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters sorted by name then value, each side URI-encoded; a presigned query's
/// own signature is not part of what it signs.
fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(name, _)| !(presigned && name == "X-Amz-Signature"))
        .map(|(name, value)| (uri_encode(&name), uri_encode(&value)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) as `%XX`.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 example (the IAM ListUsers GET request of the signing
    /// documentation): its signature is computed from its parts.
    #[test]
    fn the_documented_example_signature_is_reproduced() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        headers.insert(
            "host",
            "iam.amazonaws.com"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        headers.insert(
            "x-amz-date",
            "20150830T123600Z".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let request = Signed {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            authority: None,
            headers: &headers,
            body: b"",
        };
        let parts = Authorization {
            access_key_id: "AKIDEXAMPLE".into(),
            scope: "20150830/us-east-1/iam/aws4_request".into(),
            signed_headers: ["content-type", "host", "x-amz-date"]
                .map(String::from)
                .into(),
            signature: String::new(),
            date: "20150830T123600Z".into(),
            expires: None,
        };
        assert_eq!(
            signature(&request, &parts, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_credentials_file_names_its_bad_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("credentials");
        std::fs::write(&path, "# comment\nAKID secret 123456789012\n\nbad\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let error = Identities::load(&path).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("line 4")),
            "{error:?}"
        );
        std::fs::write(&path, "AKID secret 123456789012\nOTHER s2\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let loaded = Identities::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.by_key["AKID"].account_id.as_deref(),
            Some("123456789012")
        );
        assert_eq!(loaded.by_key["OTHER"].account_id, None);
    }
}
