//! Routing rules of a tenant: München's large payments go to another provider than its small ones.

use std::sync::Arc;

use pforte::clock::SystemClock;
use serde_json::Value;

use crate::helpers::{copy_dir, TestContext, TestResult, MANIFEST_DIR};
use crate::payment_api::{bearer, body, create, location};

pub async fn a_rule_sends_large_payments_to_another_provider(ctx: TestContext) -> TestResult {
    let tenants = ctx.dir.path().join("tenants");
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/tenants"), &tenants)?;
    let file = tenants.join("09162000.toml");
    let text = std::fs::read_to_string(&file)?;
    let rule = "\n[[payment.rules]]\nprovider = \"sim-pay-b\"\nmin_amount = \"100.00\"\n";
    std::fs::write(&file, text.replace("\n[payment.settings]", &format!("{rule}\n[payment.settings]")))?;
    let app = ctx.spawn_app_with(|f| f.merge(("registry.tenants", tenants.clone())), Arc::new(SystemClock)).await;
    let token = bearer(&app).await?;

    let mut large = body(&app, "LARGE-1");
    large["grosAmount"] = serde_json::from_str("150.00")?;
    large["items"][0]["singleNetAmount"] = serde_json::from_str("150.00")?;
    large["items"][0]["totalNetAmount"] = serde_json::from_str("150.00")?;
    let mut routed = Vec::new();
    for request in [body(&app, "SMALL-1"), large] {
        let created = create(&app, &token, "09162000", &request, None).await?;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await?;
        let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
        let payment = app.state.db.payment(&id).await?.expect("payment");
        let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
        routed.push((payment.provider_id, pay_page.contains("/dev/pay-b/")));
    }
    assert_eq!(routed, vec![("sim-pay".to_owned(), false), ("sim-pay-b".to_owned(), true)]);
    app.stop().await
}
backend_test!(a_rule_sends_large_payments_to_another_provider);
