//! The CLI's errors, printed the way kubectl prints them (`cmdutil.CheckErr`): `Error from server
//! (NotFound): deployments.apps "x" not found`, `error: ...`, exit code 1.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A `Status` the server answered with.
    #[error("{}", server_message(.status))]
    Api { code: u16, status: Value },
    /// The TCP connection failed: no server running, or the wrong address.
    #[error("The connection to the server {server} was refused - did you specify the right host or port?{hint}")]
    Refused { server: String, hint: String },
    #[error("Unable to connect to the server: {0}")]
    Connect(String),
    #[error("error: {0}")]
    Kubeconfig(String),
    /// A usage or validation mistake found before any request.
    #[error("error: {0}")]
    Usage(String),
    #[error("error: {0}")]
    Io(#[from] std::io::Error),
    /// A failure the command itself detected (kubectl's `error: ...` lines).
    #[error("error: {0}")]
    Failed(String),
    /// The message was already printed; just exit with this code.
    #[error("")]
    Exit(i32),
}

impl CliError {
    /// The HTTP status code when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            CliError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Exit(code) => *code,
            _ => 1,
        }
    }

    /// The server's message without the `Error from server (...)` prefix.
    pub fn message(&self) -> String {
        match self {
            CliError::Api { status, .. } => {
                status.get("message").and_then(Value::as_str).unwrap_or_default().to_string()
            }
            other => other.to_string(),
        }
    }
}

/// kubectl's `StandardErrorMessage` for a `StatusError`.
pub fn server_message(status: &Value) -> String {
    let message = status.get("message").and_then(Value::as_str).unwrap_or("unknown error");
    match status.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty() && *r != "Unknown") {
        Some(reason) => format!("Error from server ({reason}): {message}"),
        None => format!("Error from server: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_kubectl() {
        let not_found = CliError::Api {
            code: 404,
            status: json!({"kind":"Status","status":"Failure","reason":"NotFound","message":"deployments.apps \"x\" not found","code":404}),
        };
        assert_eq!(not_found.to_string(), "Error from server (NotFound): deployments.apps \"x\" not found");
        assert!(not_found.is_not_found());
        assert_eq!(server_message(&json!({"message":"boom"})), "Error from server: boom");
        let refused = CliError::Refused { server: "127.0.0.1:6443".into(), hint: String::new() };
        assert_eq!(
            refused.to_string(),
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
        );
    }
}
