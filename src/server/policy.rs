//! IAM-style authorization for the shard server (`--policy-file`).
//!
//! Two kinds of policy decide whether a call may go ahead, evaluated together as AWS
//! evaluates them for a caller in the resource's own account:
//! - identity policies, per access key, from the policy file;
//! - the resource policy that PutResourcePolicy stored on the stream.
//!
//! An explicit `Deny` in either wins; otherwise an `Allow` in either lets the call
//! through; otherwise the call is refused (implicit deny). The grammar is the part of
//! IAM's that matters for Kinesis: `Effect`, `Action`/`NotAction` and
//! `Resource`/`NotResource` with `*` and `?` wildcards, and in resource policies
//! `Principal` (`"*"`, or `{"AWS": ...}` naming an account or a user). A `Condition`
//! is refused when the policy is read rather than ignored: a policy this server cannot
//! evaluate must not silently grant more than it says.
//!
//! The policy file maps access key ids to the user they stand for and that user's
//! policies:
//!
//! ```json
//! {"AKIDAGENT": {"UserName": "agent", "Policies": [
//!     {"Version": "2012-10-17", "Statement": [
//!         {"Effect": "Allow", "Action": ["kinesis:PutRecord*", "kinesis:Describe*"],
//!          "Resource": "arn:aws:kinesis:*:*:stream/app-*"}]}]}}
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every identity policy of the policy file, by access key id.
#[derive(Debug, Default)]
pub struct Policies {
    by_key: HashMap<String, User>,
}

#[derive(Debug)]
struct User {
    name: String,
    documents: Vec<Document>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("cannot read the policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policy file {path} is not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the policy file {path} has {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl Policies {
    pub fn load(path: &Path) -> Result<Policies, PolicyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| PolicyFileError::Json {
            path: path.to_owned(),
            source,
        })?;
        Policies::from_value(&value).map_err(|problems| PolicyFileError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Reads `{"ACCESS_KEY": {"UserName": ..., "Policies": [...]}}`; every problem is
    /// reported, each with the path of the key it is in.
    pub fn from_value(value: &Value) -> Result<Policies, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_key = HashMap::new();
        let Some(entries) = value.as_object() else {
            return Err(vec![
                "the file must be an object mapping access key ids to {\"UserName\", \"Policies\"}"
                    .into(),
            ]);
        };
        for (key, entry) in entries {
            let Some(entry) = entry.as_object() else {
                problems.push(format!(
                    "{key}: must be an object with \"UserName\" and \"Policies\""
                ));
                continue;
            };
            for field in entry.keys() {
                if field != "UserName" && field != "Policies" {
                    problems.push(format!(
                        "{key}.{field}: unknown key; an identity has \"UserName\" and \"Policies\""
                    ));
                }
            }
            let name = match entry.get("UserName") {
                None => key.clone(),
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                Some(other) => {
                    problems.push(format!(
                        "{key}.UserName: {other} is not a user name; write a non-empty string"
                    ));
                    key.clone()
                }
            };
            let mut documents = Vec::new();
            match entry.get("Policies") {
                Some(Value::Array(list)) => {
                    for (index, document) in list.iter().enumerate() {
                        match Document::parse(document, Kind::Identity) {
                            Ok(document) => documents.push(document),
                            Err(found) => problems.extend(
                                found
                                    .into_iter()
                                    .map(|p| format!("{key}.Policies[{index}]{p}")),
                            ),
                        }
                    }
                }
                _ => problems.push(format!(
                    "{key}.Policies: missing or not a list; write a list of policy documents"
                )),
            }
            by_key.insert(key.clone(), User { name, documents });
        }
        if problems.is_empty() {
            Ok(Policies { by_key })
        } else {
            Err(problems)
        }
    }

    /// The user name an access key stands for (the key itself when the file does not
    /// name it), and its identity policies.
    fn user<'a>(&'a self, access_key_id: &'a str) -> (&'a str, &'a [Document]) {
        match self.by_key.get(access_key_id) {
            Some(user) => (&user.name, &user.documents),
            None => (access_key_id, &[]),
        }
    }

    /// Decides one call. `resource_policy` is the stream's, when it has one.
    pub fn authorize(
        &self,
        call: &Call<'_>,
        resource_policy: Option<&Document>,
    ) -> Result<(), Denied> {
        let (user, documents) = self.user(call.access_key_id);
        let caller = Caller {
            arn: format!("arn:aws:iam::{}:user/{user}", call.account_id),
            account_id: call.account_id,
        };
        let action = format!("kinesis:{}", call.action);
        let mut allowed = false;
        for document in documents {
            match document.decide(&action, call.resource, None) {
                Some(Effect::Deny) => {
                    return Err(denied(
                        &caller,
                        &action,
                        call,
                        "with an explicit deny in an identity-based policy",
                    ));
                }
                Some(Effect::Allow) => allowed = true,
                None => {}
            }
        }
        if let Some(document) = resource_policy {
            match document.decide(&action, call.resource, Some(&caller)) {
                Some(Effect::Deny) => {
                    return Err(denied(
                        &caller,
                        &action,
                        call,
                        "with an explicit deny in a resource-based policy",
                    ));
                }
                Some(Effect::Allow) => allowed = true,
                None => {}
            }
        }
        if allowed {
            Ok(())
        } else {
            let reason = format!("because no identity-based policy allows the {action} action");
            Err(denied(&caller, &action, call, &reason))
        }
    }
}

fn denied(caller: &Caller, action: &str, call: &Call<'_>, reason: &str) -> Denied {
    Denied {
        message: format!(
            "User: {} is not authorized to perform: {action} on resource: {} {reason}",
            caller.arn, call.resource
        ),
    }
}

/// One call to decide.
#[derive(Debug)]
pub struct Call<'a> {
    pub access_key_id: &'a str,
    pub account_id: &'a str,
    /// The API action, as in `X-Amz-Target` (`GetRecords`).
    pub action: &'a str,
    /// The ARN the action acts on, or `*` for actions on no resource (ListStreams).
    pub resource: &'a str,
}

/// A refusal, with AWS's message naming the user, the action and the resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied {
    pub message: String,
}

struct Caller<'a> {
    arn: String,
    account_id: &'a str,
}

/// Whether a document is attached to an identity or to a resource; the two differ in
/// whether a statement names its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or everything but them (`NotAction`, `NotResource`).
#[derive(Debug)]
enum Patterns {
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl Patterns {
    fn matches(&self, value: &str, fold_case: bool) -> bool {
        let any = |patterns: &[String]| {
            patterns.iter().any(|p| {
                if fold_case {
                    wildcard_match(&p.to_ascii_lowercase(), &value.to_ascii_lowercase())
                } else {
                    wildcard_match(p, value)
                }
            })
        };
        match self {
            Patterns::Only(patterns) => any(patterns),
            Patterns::AllBut(patterns) => !any(patterns),
        }
    }
}

/// Who a resource policy's statement is about.
#[derive(Debug)]
enum Principals {
    Anyone,
    /// Account ids (from `123456789012` or `arn:aws:iam::123456789012:root`) and user ARNs.
    Listed {
        accounts: Vec<String>,
        users: Vec<String>,
    },
}

#[derive(Debug)]
struct Statement {
    effect: Effect,
    actions: Patterns,
    resources: Patterns,
    principals: Option<Principals>,
}

/// A policy document this server can evaluate.
#[derive(Debug)]
pub struct Document {
    statements: Vec<Statement>,
}

impl Document {
    /// Reads a document; the problems, each starting with the path inside it
    /// (`.Statement[0].Effect: ...`).
    pub fn parse(value: &Value, kind: Kind) -> Result<Document, Vec<String>> {
        let mut problems = Vec::new();
        let Some(object) = value.as_object() else {
            return Err(vec![": a policy document must be a JSON object".into()]);
        };
        for (field, value) in object {
            match field.as_str() {
                "Version" => {
                    if !matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) {
                        problems.push(format!(
                            ".Version: {value} is not a policy language version; write \"2012-10-17\""
                        ));
                    }
                }
                "Id" | "Statement" => {}
                _ => problems.push(format!(
                    ".{field}: unknown key; a policy has Version, Id and Statement"
                )),
            }
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => {
                problems.push(".Statement: missing; write a list of statements".into());
                Vec::new()
            }
        };
        let mut parsed = Vec::new();
        for (index, statement) in statements.into_iter().enumerate() {
            match Statement::parse(statement, kind) {
                Ok(statement) => parsed.push(statement),
                Err(found) => problems.extend(
                    found
                        .into_iter()
                        .map(|p| format!(".Statement[{index}].{p}")),
                ),
            }
        }
        if problems.is_empty() {
            Ok(Document { statements: parsed })
        } else {
            Err(problems)
        }
    }

    /// What the document says about an action on a resource (for a caller, in a
    /// resource policy): Deny if any matching statement denies, Allow if one allows.
    fn decide(&self, action: &str, resource: &str, caller: Option<&Caller>) -> Option<Effect> {
        let mut decision = None;
        for statement in &self.statements {
            if !statement.actions.matches(action, true)
                || !statement.resources.matches(resource, false)
            {
                continue;
            }
            if let (Some(principals), Some(caller)) = (&statement.principals, caller) {
                let applies = match principals {
                    Principals::Anyone => true,
                    Principals::Listed { accounts, users } => {
                        users.iter().any(|u| wildcard_match(u, &caller.arn))
                            // Naming the account delegates an Allow to the account's own
                            // identity policies (it grants nothing by itself), but a Deny
                            // applies to everyone in it.
                            || (statement.effect == Effect::Deny
                                && accounts.iter().any(|a| a == caller.account_id))
                    }
                };
                if !applies {
                    continue;
                }
            }
            match statement.effect {
                Effect::Deny => return Some(Effect::Deny),
                Effect::Allow => decision = Some(Effect::Allow),
            }
        }
        decision
    }
}

impl Statement {
    fn parse(value: &Value, kind: Kind) -> Result<Statement, Vec<String>> {
        let mut problems = Vec::new();
        let Some(object) = value.as_object() else {
            return Err(vec![": a statement must be a JSON object".into()]);
        };
        for field in object.keys() {
            match field.as_str() {
                "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" => {}
                "Principal" if kind == Kind::Resource => {}
                "Principal" | "NotPrincipal" => problems.push(format!(
                    "{field}: an identity policy names no principal (it applies to its user); remove it"
                )),
                "Condition" => problems.push(
                    "Condition: conditions are not evaluated by this server; remove the condition or split the statement".into(),
                ),
                _ => problems.push(format!(
                    "{field}: unknown key; a statement has Sid, Effect, Action or NotAction, Resource or NotResource{}",
                    if kind == Kind::Resource { ", Principal" } else { "" }
                )),
            }
        }
        let effect = match object.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => {
                problems.push(format!(
                    "Effect: {} is not Allow or Deny",
                    other.map_or("nothing".into(), |o| format!("{o:?}"))
                ));
                Effect::Deny
            }
        };
        let actions = either(object, "Action", "NotAction", &mut problems);
        let resources = either(object, "Resource", "NotResource", &mut problems);
        let principals = match (kind, object.get("Principal")) {
            (Kind::Identity, _) => None,
            (Kind::Resource, None) => {
                problems.push(
                    "Principal: missing; a resource policy names who it is about (\"*\" or {\"AWS\": ...})".into(),
                );
                None
            }
            (Kind::Resource, Some(value)) => match principals(value) {
                Ok(principals) => Some(principals),
                Err(problem) => {
                    problems.push(format!("Principal: {problem}"));
                    None
                }
            },
        };
        if problems.is_empty() {
            Ok(Statement {
                effect,
                actions,
                resources,
                principals,
            })
        } else {
            Err(problems)
        }
    }
}

/// `Action` or `NotAction` (exactly one), as a string or a list of strings.
fn either(
    object: &serde_json::Map<String, Value>,
    name: &str,
    not_name: &str,
    problems: &mut Vec<String>,
) -> Patterns {
    match (object.get(name), object.get(not_name)) {
        (Some(value), None) => Patterns::Only(strings(value, name, problems)),
        (None, Some(value)) => Patterns::AllBut(strings(value, not_name, problems)),
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{name}: a statement has {name} or {not_name}, not both"
            ));
            Patterns::Only(Vec::new())
        }
        (None, None) => {
            problems.push(format!("{name}: missing; write {name} or {not_name}"));
            Patterns::Only(Vec::new())
        }
    }
}

fn strings(value: &Value, name: &str, problems: &mut Vec<String>) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(list) if list.iter().all(Value::is_string) && !list.is_empty() => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => {
            problems.push(format!(
                "{name}: {other} is not a string or a non-empty list of strings"
            ));
            Vec::new()
        }
    }
}

fn principals(value: &Value) -> Result<Principals, String> {
    if value.as_str() == Some("*") {
        return Ok(Principals::Anyone);
    }
    let Some(aws) = value.as_object().and_then(|o| o.get("AWS")) else {
        return Err(format!("{value} is not \"*\" or {{\"AWS\": ...}}"));
    };
    let listed: Vec<&str> = match aws {
        Value::String(one) => vec![one.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if listed.is_empty() {
        return Err(format!("{aws} names no principal"));
    }
    if listed.contains(&"*") {
        return Ok(Principals::Anyone);
    }
    let mut accounts = Vec::new();
    let mut users = Vec::new();
    for principal in listed {
        let account = principal
            .strip_prefix("arn:aws:iam::")
            .and_then(|rest| rest.strip_suffix(":root"))
            .unwrap_or(principal);
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
            accounts.push(account.to_owned());
        } else if principal.starts_with("arn:aws:iam::") {
            users.push(principal.to_owned());
        } else {
            return Err(format!(
                "{principal:?} is not an account id, an account ARN (arn:aws:iam::ACCOUNT:root) or a user ARN"
            ));
        }
    }
    Ok(Principals::Listed { accounts, users })
}

/// IAM's wildcards: `*` any run of characters, `?` any one character.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let pattern = pattern.as_bytes();
    let value = value.as_bytes();
    let (mut p, mut v) = (0, 0);
    // Where the last `*` was, and the value position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(&c) if c == b'?' || c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((star_p, star_v)) => {
                    p = star_p + 1;
                    v = star_v + 1;
                    star = Some((star_p, star_v + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/app-logs";

    fn call<'a>(key: &'a str, action: &'a str, resource: &'a str) -> Call<'a> {
        Call {
            access_key_id: key,
            account_id: "000000000000",
            action,
            resource,
        }
    }

    fn policies(value: Value) -> Policies {
        Policies::from_value(&value).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn writer() -> Policies {
        policies(json!({"AKIDAGENT": {"UserName": "agent", "Policies": [{
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/app-*"},
            {"Effect": "Deny", "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator"],
             "Resource": STREAM},
            {"Effect": "Allow", "Action": "kinesis:ListStreams", "Resource": "*"}
        ]}]}}))
    }

    #[test]
    fn wildcards_cover_runs_and_single_characters() {
        assert!(wildcard_match("kinesis:Put*", "kinesis:PutRecords"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(wildcard_match("shard-?", "shard-1"));
        assert!(!wildcard_match("shard-?", "shard-10"));
        assert!(!wildcard_match("a*b", "acbd"));
        assert!(wildcard_match(
            "arn:*:stream/app-*",
            "arn:x:stream/app-logs"
        ));
    }

    #[test]
    fn an_allow_lets_a_call_through_and_an_explicit_deny_wins_over_it() {
        let p = writer();
        assert_eq!(
            p.authorize(&call("AKIDAGENT", "PutRecords", STREAM), None),
            Ok(())
        );
        assert_eq!(
            p.authorize(&call("AKIDAGENT", "putrecords", STREAM), None),
            Ok(())
        );
        let denied = p
            .authorize(&call("AKIDAGENT", "GetRecords", STREAM), None)
            .unwrap_err();
        assert_eq!(
            denied.message,
            format!(
                "User: arn:aws:iam::000000000000:user/agent is not authorized to perform: kinesis:GetRecords on resource: {STREAM} with an explicit deny in an identity-based policy"
            )
        );
    }

    #[test]
    fn what_no_policy_allows_is_refused_naming_the_user_action_and_resource() {
        let p = writer();
        let other = "arn:aws:kinesis:us-east-1:000000000000:stream/billing";
        let denied = p
            .authorize(&call("AKIDAGENT", "PutRecords", other), None)
            .unwrap_err();
        assert!(
            denied
                .message
                .ends_with("because no identity-based policy allows the kinesis:PutRecords action")
        );
        // A key the file does not know has no policy; its user is the key.
        let denied = p
            .authorize(&call("AKIDOTHER", "ListStreams", "*"), None)
            .unwrap_err();
        assert!(
            denied
                .message
                .starts_with("User: arn:aws:iam::000000000000:user/AKIDOTHER ")
        );
        assert_eq!(
            p.authorize(&call("AKIDAGENT", "ListStreams", "*"), None),
            Ok(())
        );
    }

    #[test]
    fn a_resource_policy_grants_to_a_named_user_and_its_deny_binds_the_whole_account() {
        let p = writer();
        let grant = Document::parse(
            &json!({"Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::000000000000:user/reader"},
                "Action": "kinesis:Get*", "Resource": STREAM}]}),
            Kind::Resource,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        let reader = policies(json!({"AKIDREAD": {"UserName": "reader", "Policies": []}}));
        assert_eq!(
            reader.authorize(&call("AKIDREAD", "GetRecords", STREAM), Some(&grant)),
            Ok(())
        );
        assert!(
            reader
                .authorize(&call("AKIDREAD", "PutRecord", STREAM), Some(&grant))
                .is_err()
        );
        assert!(
            reader
                .authorize(&call("AKIDELSE", "GetRecords", STREAM), Some(&grant))
                .is_err()
        );

        let account_deny = Document::parse(
            &json!({"Statement": [{"Effect": "Deny", "Principal": {"AWS": "000000000000"},
                "Action": "kinesis:PutRecords", "Resource": "*"}]}),
            Kind::Resource,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        let denied = p
            .authorize(
                &call("AKIDAGENT", "PutRecords", STREAM),
                Some(&account_deny),
            )
            .unwrap_err();
        assert!(
            denied
                .message
                .ends_with("with an explicit deny in a resource-based policy")
        );
        // Naming the account in an Allow grants nothing by itself.
        let account_allow = Document::parse(
            &json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                "Action": "kinesis:*", "Resource": "*"}]}),
            Kind::Resource,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert!(
            reader
                .authorize(&call("AKIDREAD", "PutRecord", STREAM), Some(&account_allow))
                .is_err()
        );
    }

    #[test]
    fn not_action_and_not_resource_match_everything_but_what_they_list() {
        let p = policies(json!({"K": {"Policies": [{"Statement": [
            {"Effect": "Allow", "NotAction": "kinesis:Delete*", "NotResource": "arn:aws:kinesis:*:*:stream/secret"}
        ]}]}}));
        assert_eq!(p.authorize(&call("K", "PutRecord", STREAM), None), Ok(()));
        assert!(
            p.authorize(&call("K", "DeleteStream", STREAM), None)
                .is_err()
        );
        let secret = "arn:aws:kinesis:us-east-1:000000000000:stream/secret";
        assert!(p.authorize(&call("K", "PutRecord", secret), None).is_err());
    }

    #[test]
    fn every_problem_of_a_policy_file_is_reported_with_its_path() {
        let problems = Policies::from_value(&json!({
            "K1": {"UserName": "a", "Policies": [{"Version": "2020", "Statement": [
                {"Effect": "allow", "Action": "kinesis:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Condition": {}},
                {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Principal": "*"},
                {"Effect": "Allow", "Resource": 5}
            ]}]},
            "K2": {"Policy": {}}
        }))
        .unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "K1.Policies[0].Version: \"2020\"",
            "K1.Policies[0].Statement[0].Effect: \"allow\" is not Allow or Deny",
            "K1.Policies[0].Statement[1].Condition:",
            "K1.Policies[0].Statement[2].Principal:",
            "K1.Policies[0].Statement[3].Action: missing",
            "K1.Policies[0].Statement[3].Resource: 5 is not a string",
            "K2.Policy: unknown key",
            "K2.Policies: missing",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }

    #[test]
    fn a_resource_policy_must_name_its_principal() {
        let problems = Document::parse(
            &json!({"Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}),
            Kind::Resource,
        )
        .unwrap_err();
        assert!(
            problems[0].starts_with(".Statement[0].Principal: missing"),
            "{problems:?}"
        );
    }
}
