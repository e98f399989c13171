//! `list`: requests as a table, optionally only pending ones or only the caller's.

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use mua_api::crd::CriticalOperationRequest;

use super::KIND;
use crate::args::{ListArgs, Output};
use crate::client::Session;
use crate::error::{Exit, Failure, Target, from_kube};
use crate::output::{self, Table, or_dash};
use crate::state;

pub async fn run(session: &Session, args: ListArgs, format: Output) -> Result<Exit, Failure> {
    // `--mine` compares with the name the API server knows us by, not a local guess.
    let me = match args.mine {
        true => Some(session.whoami().await?.username),
        false => None,
    };
    let api: Api<CriticalOperationRequest> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        session.requests()
    };
    let namespace = (!args.all_namespaces).then_some(session.namespace.as_str());
    let mut requests = api
        .list(&ListParams::default())
        .await
        .map_err(|err| from_kube(err, Target::collection(KIND, namespace)))?
        .items;
    requests.retain(|r| {
        (!args.pending || state::is_undecided(r)) && me.as_deref().is_none_or(|me| state::requester(r) == Some(me))
    });
    requests.sort_by_key(|r| (r.namespace(), r.name_any()));

    if format != Output::Table {
        print!("{}", output::list(&requests, format)?);
        return Ok(Exit::Success);
    }
    if requests.is_empty() {
        match namespace {
            Some(ns) => eprintln!("No requests found in namespace {ns}."),
            None => eprintln!("No requests found."),
        }
        return Ok(Exit::Success);
    }
    print!("{}", table(&requests, args.all_namespaces, Timestamp::now()).render());
    Ok(Exit::Success)
}

fn table(requests: &[CriticalOperationRequest], all_namespaces: bool, now: Timestamp) -> Table {
    let mut headers = vec!["NAME"];
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "VAULT PROTECTION",
        "OPERATION",
        "REQUESTER",
        "PHASE",
        "APPROVALS",
        "EXPIRES",
        "AGE",
    ]);
    let mut table = Table::new(headers);
    for r in requests {
        let mut row = vec![r.name_any()];
        if all_namespaces {
            row.push(r.namespace().unwrap_or_default());
        }
        row.extend([
            r.spec.vault_protection.clone(),
            match r.status.as_ref().and_then(|s| s.blast_radius.as_ref()) {
                Some(radius) => format!("{:?} (opens {} vaults)", r.spec.operation, radius.vaults.len()),
                None => format!("{:?}", r.spec.operation),
            },
            or_dash(state::requester(r)),
            state::phase_name(state::phase(r)),
            state::approvals_summary(r),
            output::relative(r.status.as_ref().and_then(|s| s.expires_at.as_ref()), now),
            output::age(r.metadata.creation_timestamp.as_ref(), now),
        ]);
        table.row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use mua_api::crd::critical_operation_request::CriticalOperationRequestSpec;
    use mua_api::operations::CriticalOperation;

    use super::*;

    /// With the chart's admission policies every request names its requester; one created before they
    /// were installed does not, and neither has a phase or expiry before the operator sees it.
    #[test]
    fn what_is_not_set_shows_as_a_dash() {
        let spec = CriticalOperationRequestSpec {
            vault_protection: "prod-vault".into(),
            operation: CriticalOperation::DisableSoftDelete,
            duration: "30m".into(),
            justification: "Decommission".into(),
            ticket: None,
            requester: None,
            requester_groups: Vec::new(),
            principal: None,
            action: None,
        };
        let request = CriticalOperationRequest::new("legacy", spec);
        let rendered = table(&[request], false, Timestamp::now()).render();
        let row: Vec<&str> = rendered
            .lines()
            .nth(1)
            .unwrap()
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            row,
            ["legacy", "prod-vault", "DisableSoftDelete", "-", "-", "0", "-", "-"]
        );
    }
}
