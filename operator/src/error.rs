//! The operator's errors, each with a fixed reason: the same word in metrics, Events and
//! status conditions. Their messages are for people: what failed and what to do, never a
//! debug dump of an API response.

use socketfleet_api::admission::Invalid;

use crate::redis_cluster::HealError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the spec breaks a rule: {0}")]
    InvalidSpec(#[from] Invalid),
    #[error("Kubernetes API: {}", describe_kube(.0))]
    Kube(#[from] kube::Error),
    #[error("Redis administration: {0}")]
    Redis(#[from] HealError),
    #[error("Secret {name} has no key {key:?} (referenced by the spec): create it, or fix the reference")]
    MissingSecretKey { name: String, key: String },
    #[error(
        "{kind} {name} is already controlled by {owner}: two fleets claim the same name; rename this fleet or the other \
         (the fleet's children are <name>, <name>-redis, <name>-gateway and the like)"
    )]
    NameConflict { kind: String, name: String, owner: String },
    #[error(
        "Secret {name} (key {key}) was deleted while {used_by} uses it, and this operator does not know its value: \
         recreate it with the old value (kubectl create secret generic {name} --from-literal={key}=<value>), \
         or delete {used_by} to start it afresh with a new one"
    )]
    SecretLost { name: String, key: String, used_by: String },
    #[error("the object has no namespace")]
    NoNamespace,
}

/// A kube error in words: an API server's refusal is its own message and code.
pub fn describe_kube(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() { String::new() } else { format!(", {}", status.reason) };
            format!("{} (HTTP {}{reason})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

impl Error {
    /// A fixed, CamelCase reason for conditions, Events and the metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "Forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => "RejectedByApiServer",
            Error::Kube(_) => "KubernetesApiError",
            Error::Redis(_) => "RedisAdminError",
            Error::MissingSecretKey { .. } => "SecretMissing",
            Error::NameConflict { .. } => "NameConflict",
            Error::SecretLost { .. } => "SecretLost",
            Error::NoNamespace => "InvalidSpec",
        }
    }

    /// Whether retrying without a spec change can help (a person may fix what is outside
    /// the spec: a Secret, the other fleet).
    pub fn retryable(&self) -> bool {
        !matches!(self, Error::InvalidSpec(_) | Error::NoNamespace)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_fixed_words() {
        let invalid = Error::InvalidSpec(Invalid(vec!["x".into()]));
        assert_eq!((invalid.reason(), invalid.retryable()), ("InvalidSpec", false));
        let missing = Error::MissingSecretKey { name: "s".into(), key: "k".into() };
        assert_eq!((missing.reason(), missing.retryable()), ("SecretMissing", true));
        assert!(missing.to_string().contains("Secret s has no key \"k\""));
    }

    #[test]
    fn api_refusals_read_as_sentences() {
        let status =
            kube::core::Status::failure("Deployment.apps \"x\" is invalid: metadata.name: Invalid value", "Invalid").with_code(422);
        let e = Error::Kube(kube::Error::Api(Box::new(status)));
        assert_eq!(e.to_string(), "Kubernetes API: Deployment.apps \"x\" is invalid: metadata.name: Invalid value (HTTP 422, Invalid)");
        assert!(!e.to_string().contains("Status {"), "no debug dump");
        assert_eq!(e.reason(), "RejectedByApiServer");
    }
}
