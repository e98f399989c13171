//! Exit codes and the errors behind them, phrased for the person at the terminal.

use std::fmt;
use std::process::ExitCode;

/// The documented exit codes (docs/src/reference/kubectl-mua.md). Scripts branch on them, so never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done: approved/denied/revoked as asked, or the request is Active or Completed.
    Success = 0,
    /// Something unexpected: the API server unreachable, a bad kubeconfig, a malformed answer.
    Unexpected = 1,
    /// A usage error (clap reports these itself with the same code).
    Usage = 2,
    /// The request was denied.
    Denied = 3,
    /// The request ended without success: expired, revoked or failed.
    Ended = 4,
    /// Waiting timed out.
    TimedOut = 5,
    /// Refused: by the API server (forbidden, invalid, admission policy) or because the request's state
    /// does not allow the action (already decided, your own request, already ended).
    Refused = 6,
    /// The object does not exist.
    NotFound = 7,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failure with the message to print after `error: ` and the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(Exit::Unexpected, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Exit::Refused, message)
    }

    pub fn not_found(kind: &str, name: &str, namespace: &str) -> Self {
        Self::new(
            Exit::NotFound,
            format!("{kind} \"{name}\" not found in namespace \"{namespace}\""),
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a call to the API server was about, so its error can name the object.
pub struct Target<'a> {
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn object(kind: &'a str, name: &'a str, namespace: &'a str) -> Self {
        Self {
            kind,
            name: Some(name),
            namespace: Some(namespace),
        }
    }

    pub fn collection(kind: &'a str, namespace: Option<&'a str>) -> Self {
        Self {
            kind,
            name: None,
            namespace,
        }
    }
}

/// Maps an API error to an exit code; the server's own message is kept, since admission policies and CEL
/// rules write it for people.
pub fn from_kube(err: kube::Error, target: Target<'_>) -> Failure {
    match err {
        kube::Error::Api(status) => match status.code {
            404 => match (target.name, target.namespace) {
                (Some(name), Some(namespace)) => Failure::not_found(target.kind, name, namespace),
                _ => Failure::new(Exit::NotFound, status.message),
            },
            // Forbidden, conflict-free refusals and admission rejections: the server said no.
            400 | 403 | 409 | 422 => Failure::refused(status.message),
            401 => Failure::unexpected(format!(
                "the API server did not accept your credentials ({}): check your kubeconfig or log in again",
                status.message
            )),
            _ => Failure::unexpected(format!("the API server answered {}: {}", status.code, status.message)),
        },
        other => {
            let server = SERVER.get().map(|s| format!(" at {s}")).unwrap_or_default();
            Failure::unexpected(format!("cannot reach the API server{server}: {}", causes(&other)))
        }
    }
}

/// The API server's URL, once connected, so connection errors can say where they tried.
pub static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An error with its causes (`client error (Connect): tcp connect error: Connection refused`): the
/// outermost one alone rarely says what went wrong.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
