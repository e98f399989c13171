//! `request`: create a CriticalOperationRequest and, unless `--no-wait`, follow it to a decision.

use kube::api::{Api, PostParams};
use mua_api::crd::critical_operation_request::CriticalOperationRequestSpec;
use mua_api::crd::shared::AzurePrincipal;
use mua_api::crd::{CriticalOperationRequest, VaultProtection};
use mua_api::operations::CriticalOperation;

use super::{KIND, require_text, wait};
use crate::args::{Output, RequestArgs, WaitFor};
use crate::client::Session;
use crate::error::{Exit, Failure, Target, from_kube};
use crate::output::{self, note};

/// Generated names can collide (five random characters); retry with new ones this many times.
const NAME_ATTEMPTS: usize = 3;

pub async fn run(session: &Session, args: RequestArgs, format: Output) -> Result<Exit, Failure> {
    require_text("--justification", &args.justification)?;
    let me = session.whoami().await?;
    show_guard_description(session, &args.vault_protection, format).await?;

    // No requester: the API server fills it in from who we are, and refuses any other value.
    let spec = CriticalOperationRequestSpec {
        vault_protection: args.vault_protection.clone(),
        operation: args.operation,
        duration: args.duration.clone(),
        justification: args.justification.clone(),
        ticket: args.ticket.clone(),
        requester: None,
        requester_groups: Vec::new(),
        principal: args.principal.clone().map(|object_id| AzurePrincipal {
            object_id,
            tenant_id: args.principal_tenant.clone(),
        }),
        // Actions are written in YAML (kubectl apply), where approvers read them in full.
        action: None,
    };
    let created = create(session, &args, spec).await?;
    let name = kube::ResourceExt::name_any(&created);
    note(format, format!("requested as {}", me.username));
    note(
        format,
        format!("{KIND}/{name} created in namespace {}", session.namespace),
    );

    if args.no_wait {
        note(
            format,
            format!(
                "approvers decide with: kubectl mua approve {name} -n {} --reason \"...\"",
                session.namespace
            ),
        );
        if format != Output::Table {
            print!("{}", output::object(&created, format)?);
        }
        return Ok(Exit::Success);
    }

    note(
        format,
        "waiting for a decision (Ctrl-C stops waiting; the request stays)",
    );
    let (exit, last) = wait::follow(session, &name, WaitFor::Active, args.timeout, format).await?;
    if format != Output::Table {
        print!("{}", output::object(&last, format)?);
    }
    Ok(exit)
}

/// Checks that the VaultProtection exists and shows its guard's "how to ask for access" text. A caller
/// who may create requests but not read VaultProtections is not stopped: the operator checks anyway.
async fn show_guard_description(session: &Session, vault_protection: &str, format: Output) -> Result<(), Failure> {
    let api: Api<VaultProtection> = Api::namespaced(session.client.clone(), &session.namespace);
    match api.get(vault_protection).await {
        Ok(vp) => {
            let description = vp.status.and_then(|s| s.guard_description);
            if let Some(text) = description.filter(|d| !d.trim().is_empty()) {
                note(format, "how to ask for access (from the Resource Guard):");
                for line in text.lines() {
                    note(format, format!("  {line}"));
                }
            }
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(err) => Err(from_kube(
            err,
            Target::object("vaultprotection", vault_protection, &session.namespace),
        )),
    }
}

async fn create(
    session: &Session,
    args: &RequestArgs,
    spec: CriticalOperationRequestSpec,
) -> Result<CriticalOperationRequest, Failure> {
    let api = session.requests();
    let attempts = if args.name.is_some() { 1 } else { NAME_ATTEMPTS };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| generated_name(&args.vault_protection, args.operation));
        let request = CriticalOperationRequest::new(&name, spec.clone());
        match api.create(&PostParams::default(), &request).await {
            // The name is taken: try another.
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < attempts => {}
            result => return result.map_err(|err| from_kube(err, Target::object(KIND, &name, &session.namespace))),
        }
    }
}

/// `<vault-protection>-<operation-in-kebab-case>-<5 random>`, like the API server's generateName, within
/// the 253 characters of an object name.
fn generated_name(vault_protection: &str, operation: CriticalOperation) -> String {
    // The alphabet the API server uses for generateName: no vowels, no look-alike characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    let mut prefix = format!("{vault_protection}-{}", kebab(&format!("{operation:?}")));
    prefix.truncate(253 - 6);
    format!("{}-{suffix}", prefix.trim_end_matches(['-', '.']))
}

fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_read_as_vault_operation_and_suffix() {
        let name = generated_name("prod-vault", CriticalOperation::DisableSoftDelete);
        let (prefix, suffix) = name.rsplit_once('-').unwrap();
        assert_eq!(prefix, "prod-vault-disable-soft-delete");
        assert_eq!(suffix.len(), 5);
        assert!(suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn generated_names_fit_in_an_object_name() {
        let name = generated_name(&"v".repeat(253), CriticalOperation::ChangeMarsSecurityPin);
        assert!(name.len() <= 253, "{}", name.len());
    }
}
