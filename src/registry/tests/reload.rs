//! What a reload is told changed (`RegistryDiff`) and the swap of the registry in use
//! (`SharedRegistry`).

use super::*;

fn diff(before: &Registry, after: &Registry) -> RegistryDiff {
    RegistryDiff::between(before, after)
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[test]
fn the_same_files_read_again_are_no_change() -> Result<(), Box<dyn std::error::Error>> {
    let tree = Tree::new()?;
    let (before, after) = (tree.load(true)?, tree.load(true)?);
    let diff = diff(&before, &after);
    assert!(diff.is_empty(), "{diff}");
    assert_eq!(diff.to_string(), "no change");
    Ok(())
}

#[test]
fn added_removed_and_changed_files_are_told_apart_by_kind() -> Result<(), Box<dyn std::error::Error>> {
    let tree = Tree::new()?;
    tree.write("providers/payment/other.toml", PAYMENT)?;
    tree.write("clients/old.toml", &CLIENT.replace("originator_id = \"svc\"", "originator_id = \"old\""))?;
    let before = tree.load(true)?;
    tree.write("providers/payment/pay.toml", &PAYMENT.replace("Test payments", "Renamed payments"))?;
    tree.remove("clients/old.toml")?;
    tree.write("clients/new.toml", &CLIENT.replace("originator_id = \"svc\"", "originator_id = \"new\""))?;
    let after = tree.load(true)?;

    let diff = diff(&before, &after);
    assert_eq!(diff.payment_providers, KindDiff { changed: strings(&["pay"]), ..KindDiff::default() });
    assert_eq!(
        diff.clients,
        KindDiff { added: strings(&["new"]), removed: strings(&["old"]), changed: Vec::new() },
        "the untouched client `service` is not named"
    );
    assert!(diff.tenants.is_empty() && diff.identity_providers.is_empty(), "{diff}");
    assert_eq!(diff.payment_providers.added_or_changed().collect::<Vec<_>>(), ["pay"]);
    assert_eq!(diff.to_string(), "clients added [new] removed [old]; payment providers changed [pay]");
    Ok(())
}

#[test]
fn a_rotated_secret_file_changes_its_entity_though_the_registry_file_stays() -> Result<(), Box<dyn std::error::Error>> {
    let tree = Tree::new()?;
    let secret = tree.dir.path().join("pay-password");
    std::fs::write(&secret, "first")?;
    let file = PAYMENT.replace("plain:pay-secret", &format!("file:{}", secret.display()));
    tree.write("providers/payment/pay.toml", &file)?;
    let before = tree.load(true)?;
    std::fs::write(&secret, "second")?;
    let after = tree.load(true)?;
    assert_eq!(diff(&before, &after).payment_providers.changed, strings(&["pay"]));
    // The fingerprint is compared, never shown: the registry's debug output holds no secret.
    assert!(!format!("{after:?}").contains("second"));
    Ok(())
}

#[test]
fn a_snapshot_outlives_the_swap_and_later_reads_see_the_new_registry() -> Result<(), Box<dyn std::error::Error>> {
    let tree = Tree::new()?;
    let shared = SharedRegistry::new(tree.load(true)?);
    let snapshot = shared.current();
    tree.write("clients/new.toml", &CLIENT.replace("originator_id = \"svc\"", "originator_id = \"new\""))?;
    let replaced = shared.replace(tree.load(true)?);
    assert!(std::sync::Arc::ptr_eq(&snapshot, &replaced), "replace gives back the registry it replaced");
    assert!(snapshot.client("new").is_none(), "an operation in flight keeps the registry it started with");
    assert!(shared.current().client("new").is_some());
    Ok(())
}
