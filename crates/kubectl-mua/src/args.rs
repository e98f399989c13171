//! The command line: global kubectl-like flags and one subcommand per verb.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mua_api::crd::critical_operation_request::Ticket;
use mua_api::operations::CriticalOperation;

/// Multi-user authorization for Azure Backup: request, approve and follow elevations
/// (CriticalOperationRequests).
///
/// Exit codes: 0 success, 1 unexpected error, 2 usage error, 3 denied, 4 ended without success (expired,
/// revoked, failed), 5 timed out waiting, 6 refused (by the API server, or because the request's state does
/// not allow it), 7 not found.
#[derive(Parser, Debug)]
#[command(name = "kubectl-mua", bin_name = "kubectl mua", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// The flags kubectl users expect on every command.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH", help_heading = "Global options")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME", help_heading = "Global options")]
    pub context: Option<String>,

    /// The namespace (default: the context's namespace, else `default`).
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAMESPACE",
        help_heading = "Global options"
    )]
    pub namespace: Option<String>,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table, help_heading = "Global options")]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Columns and text for people.
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask for elevation for a critical operation on a protected vault, and wait for the decision.
    Request(RequestArgs),
    /// Approve a pending request (someone else's).
    Approve(DecideArgs),
    /// Deny a pending request.
    Deny(DecideArgs),
    /// End a request, or its elevation, at once.
    Revoke(RevokeArgs),
    /// List requests.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one request in detail: spec, approvals, timeline, elevation, conditions.
    Describe(NameArgs),
    /// Wait until a request is active or ended.
    Wait(WaitArgs),
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The VaultProtection (in the namespace) whose vault the operation is for.
    pub vault_protection: String,

    /// The critical operation, e.g. DisableSoftDelete (also accepted: disable-soft-delete).
    #[arg(long, value_parser = parse_operation)]
    pub operation: CriticalOperation,

    /// How long the elevation lasts once granted, e.g. 30m, 2h, 1h30m (5m to 24h, within the policy).
    #[arg(long)]
    pub duration: String,

    /// Why the operation is needed (kept in the audit trail and sent to Azure).
    #[arg(long)]
    pub justification: String,

    /// The change or incident ticket, as SYSTEM:NUMBER, e.g. ServiceNow:CHG0012345.
    #[arg(long, value_parser = parse_ticket, value_name = "SYSTEM:NUMBER")]
    pub ticket: Option<Ticket>,

    /// The Azure principal (Entra object ID) to elevate, for operations done by hand. Not for
    /// DisableSoftDelete and DisableMultiUserAuthorization, which the operator performs itself.
    #[arg(long, value_name = "OBJECT_ID")]
    pub principal: Option<String>,

    /// The principal's tenant, when it is not the vault's.
    #[arg(long, value_name = "TENANT_ID", requires = "principal")]
    pub principal_tenant: Option<String>,

    /// The request's name (default: <vault-protection>-<operation>-<random>).
    #[arg(long)]
    pub name: Option<String>,

    /// Return as soon as the request is created instead of waiting for the decision.
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for the decision (0 waits forever).
    #[arg(long, value_parser = parse_timeout, default_value = "10m")]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The CriticalOperationRequest.
    pub name: String,

    /// Why, in your words (kept in the request's approvals).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The CriticalOperationRequest.
    pub name: String,

    /// Why the request or elevation ends early.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only requests you made.
    #[arg(long)]
    pub mine: bool,

    /// Only requests waiting for a decision.
    #[arg(long)]
    pub pending: bool,

    /// Requests in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The CriticalOperationRequest.
    pub name: String,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The CriticalOperationRequest.
    pub name: String,

    /// `active`: until the elevation is active or the request ended; `final`: until it ended.
    #[arg(long = "for", value_enum, default_value_t = WaitFor::Active)]
    pub wait_for: WaitFor,

    /// How long to wait (0 waits forever).
    #[arg(long, value_parser = parse_timeout, default_value = "10m")]
    pub timeout: Duration,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    Active,
    Final,
}

/// Accepts the API's names (`DisableSoftDelete`) and kebab or snake case (`disable-soft-delete`).
fn parse_operation(value: &str) -> Result<CriticalOperation, String> {
    let wanted = normalize(value);
    CriticalOperation::all()
        .find(|op| normalize(&format!("{op:?}")) == wanted)
        .ok_or_else(|| {
            let names: Vec<String> = CriticalOperation::all().map(|op| format!("{op:?}")).collect();
            format!("unknown operation; one of: {}", names.join(", "))
        })
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn parse_ticket(value: &str) -> Result<Ticket, String> {
    match value.split_once(':') {
        Some((system, number)) if !system.trim().is_empty() && !number.trim().is_empty() => Ok(Ticket {
            system: system.trim().to_string(),
            number: number.trim().to_string(),
        }),
        _ => Err("expected SYSTEM:NUMBER, e.g. ServiceNow:CHG0012345".to_string()),
    }
}

/// Durations as people type them: `90s`, `10m`, `1h30m`, `2 hours`.
fn parse_timeout(value: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = value
        .parse()
        .map_err(|_| "expected a duration such as 90s, 10m or 1h30m".to_string())?;
    Duration::try_from(parsed).map_err(|_| "the duration must not be negative".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_in_api_and_kebab_case() {
        assert_eq!(
            parse_operation("DisableSoftDelete"),
            Ok(CriticalOperation::DisableSoftDelete)
        );
        assert_eq!(
            parse_operation("change-mars-security-pin"),
            Ok(CriticalOperation::ChangeMarsSecurityPin)
        );
        assert!(parse_operation("Nope").unwrap_err().contains("DisableSoftDelete"));
    }

    #[test]
    fn tickets_need_a_system_and_a_number() {
        let ticket = parse_ticket("ServiceNow:CHG0012345").unwrap();
        assert_eq!(
            (ticket.system.as_str(), ticket.number.as_str()),
            ("ServiceNow", "CHG0012345")
        );
        assert!(parse_ticket("CHG0012345").is_err());
        assert!(parse_ticket(":1").is_err());
    }

    #[test]
    fn timeouts_parse_like_durations() {
        assert_eq!(parse_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("0s"), Ok(Duration::ZERO));
        assert!(parse_timeout("-5m").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
