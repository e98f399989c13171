//! `describe`: one request in full, the way `kubectl describe` reads: spec, how to ask for access,
//! approvals, the timeline from the audit trail, the elevation, and conditions.

use jiff::Timestamp;
use kube::ResourceExt;
use mua_api::crd::CriticalOperationRequest;

use super::get;
use crate::args::Output;
use crate::client::Session;
use crate::error::{Exit, Failure};
use crate::output::{self, Table, or_dash, when};
use crate::state;

pub async fn run(session: &Session, name: &str, format: Output) -> Result<Exit, Failure> {
    let request = get(session, name).await?;
    match format {
        Output::Table => print!("{}", render(&request, Timestamp::now())),
        _ => print!("{}", output::object(&request, format)?),
    }
    Ok(Exit::Success)
}

/// `Key:` labels padded to one column, as kubectl describe aligns them.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((format!("{key}:"), value.into()));
    }

    fn render(&self, indent: &str) -> String {
        let width = self.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
        self.0
            .iter()
            .map(|(k, v)| format!("{indent}{k:<width$}{v}\n"))
            .collect()
    }
}

/// Indents every line of a table or free text under a section heading.
fn indented(text: &str, indent: &str) -> String {
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
}

pub fn render(r: &CriticalOperationRequest, now: Timestamp) -> String {
    let status = r.status.clone().unwrap_or_default();
    let spec = &r.spec;
    let mut out = String::new();

    let mut fields = Fields(Vec::new());
    fields.add("Name", r.name_any());
    fields.add("Namespace", r.namespace().unwrap_or_default());
    fields.add("Vault Protection", &spec.vault_protection);
    // What the operator recorded the request to be for: the vault and guard approvers decide on.
    match &status.target {
        Some(target) => {
            fields.add("Vault", &target.vault_id);
            fields.add("Guard", &target.guard_id);
            if !target.change.is_empty() {
                fields.add("Change", &target.change);
            }
        }
        None => fields.add(
            "Vault",
            "not resolved yet (nobody can approve until the operator records it)",
        ),
    }
    fields.add("Operation", format!("{:?}", spec.operation));
    fields.add("Duration", &spec.duration);
    fields.add("Justification", &spec.justification);
    fields.add(
        "Ticket",
        spec.ticket
            .as_ref()
            .map_or_else(|| "-".to_string(), |t| format!("{} {}", t.system, t.number)),
    );
    let groups = match spec.requester_groups.is_empty() {
        true => String::new(),
        false => format!(" (groups: {})", spec.requester_groups.join(", ")),
    };
    fields.add("Requester", format!("{}{groups}", or_dash(state::requester(r))));
    fields.add(
        "Principal",
        match &spec.principal {
            Some(p) => match &p.tenant_id {
                Some(tenant) => format!("{} (tenant {tenant})", p.object_id),
                None => p.object_id.clone(),
            },
            None => "the operator's own identity (it performs the operation itself)".to_string(),
        },
    );
    // A person's grant opens the whole guard: approvers see how far it reaches.
    if let Some(radius) = &status.blast_radius {
        fields.add("Opens", radius.describe());
    }
    // Approvers see exactly what the operator will do.
    if let Some(action) = &spec.action {
        fields.add("Action", action.describe());
        if let Some(change) = &action.modify_backup_policy {
            fields.add("New policy", change.policy.to_string());
        }
    }
    fields.add("Created", when(r.metadata.creation_timestamp.as_ref(), now));
    let phase = state::phase_name(status.phase);
    fields.add(
        "Phase",
        match (status.phase, state::phase_detail(r)) {
            (None, _) => format!("{phase} (the operator has not picked it up yet)"),
            (Some(_), Some(detail)) => format!("{phase} ({detail})"),
            (Some(_), None) => phase,
        },
    );
    fields.add("Approvals", state::approvals_summary(r));
    if let Some(policy) = &status.policy {
        fields.add(
            "Policy",
            format!(
                "{} approval(s) required, at most {}, backend {:?}, role {}{}",
                policy.required_approvals,
                policy.max_duration,
                policy.backend,
                policy.role.azure_name(),
                match policy.rules_from.is_empty() {
                    true => String::new(),
                    false => format!(", rules of {}", policy.rules_from),
                }
            ),
        );
    }
    fields.add("Granted", when(status.granted_at.as_ref(), now));
    fields.add("Expires", when(status.expires_at.as_ref(), now));
    if status.performed_at.is_some() {
        fields.add("Performed", when(status.performed_at.as_ref(), now));
    }
    if status.ended_at.is_some() {
        fields.add("Ended", when(status.ended_at.as_ref(), now));
    }
    if let Some(rev) = &status.revocation {
        let reason = rev.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        fields.add(
            "Revoked",
            format!("by {} at {}{reason}", rev.by, output::timestamp(&rev.time)),
        );
    }
    out.push_str(&fields.render(""));

    out.push_str("How to ask for access:\n");
    match status.guard_description.as_deref().filter(|d| !d.trim().is_empty()) {
        Some(text) => out.push_str(&indented(text, "  ")),
        None => out.push_str("  - (the guard has no description yet)\n"),
    }

    out.push_str("Approval Decisions:\n");
    if status.approvals.is_empty() {
        out.push_str("  - (none yet)\n");
    } else {
        let mut table = Table::new(["APPROVER", "DECISION", "TIME", "COMMENT"]);
        for a in &status.approvals {
            table.row([
                a.approver.clone(),
                format!("{:?}", a.decision),
                output::timestamp(&a.time),
                or_dash(a.comment.as_deref()),
            ]);
        }
        out.push_str(&indented(&table.render(), "  "));
    }

    out.push_str("Timeline:\n");
    if status.history.is_empty() {
        out.push_str("  - (no transitions yet)\n");
    } else {
        let mut table = Table::new(["TIME", "PHASE", "ACTOR", "REASON", "MESSAGE"]);
        for t in &status.history {
            table.row([
                output::timestamp(&t.time),
                format!("{:?}", t.phase),
                t.actor.clone(),
                or_dash(t.reason.as_deref()),
                or_dash(t.message.as_deref()),
            ]);
        }
        out.push_str(&indented(&table.render(), "  "));
    }

    out.push_str("Elevation:\n");
    match &status.elevation {
        None => out.push_str("  - (not granted)\n"),
        Some(e) => {
            let mut fields = Fields(Vec::new());
            fields.add("Principal", or_dash(e.principal_id.as_deref()));
            fields.add("Scope", or_dash(e.scope.as_deref()));
            fields.add("Role Assignment", or_dash(e.role_assignment_id.as_deref()));
            fields.add("Schedule Request", or_dash(e.schedule_request_id.as_deref()));
            out.push_str(&fields.render("  "));
        }
    }

    out.push_str("Conditions:\n");
    if status.conditions.is_empty() {
        out.push_str("  - (none)\n");
    } else {
        let mut table = Table::new(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]);
        for c in &status.conditions.0 {
            table.row([
                c.type_.clone(),
                c.status.clone(),
                or_dash(Some(&c.reason)),
                output::age(Some(&c.last_transition_time), now),
                or_dash(Some(&c.message)),
            ]);
        }
        out.push_str(&indented(&table.render(), "  "));
    }
    out
}
