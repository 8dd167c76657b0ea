//! What a reconciliation request over HTTP asks for, read from its query parameters
//! (`tenant`, `from`, `to`, `format`, and the page's `category` and `q`). The handler (wired by the
//! lead, behind the finance token check) parses once here, then calls
//! `inputs::reconcile_period` and answers with `Report::to_json`, `Report::to_csv` or `page::render`.

use chrono::NaiveDate;

use super::page::PageFilter;
use super::reconcile::Period;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Json,
    Csv,
    Html,
}

impl Representation {
    pub fn content_type(self) -> &'static str {
        match self {
            Representation::Json => "application/json",
            Representation::Csv => "text/csv; charset=utf-8",
            Representation::Html => "text/html; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub tenant: String,
    pub period: Period,
    pub representation: Representation,
    pub filter: PageFilter,
}

impl ReportRequest {
    /// `default` is the representation when `format` is absent (JSON for the API, HTML for the page).
    /// The error says which parameter is wrong and why; it repeats no value.
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
        default: Representation,
    ) -> Result<ReportRequest, String> {
        let get = |name: &str| pairs.clone().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v);
        let tenant = get("tenant").filter(|t| !t.is_empty()).ok_or("the parameter tenant is required")?;
        let date = |name: &str| -> Result<NaiveDate, String> {
            let text = get(name).ok_or_else(|| format!("the parameter {name} is required (YYYY-MM-DD)"))?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("the parameter {name} is no date YYYY-MM-DD"))
        };
        let period = Period::new(date("from")?, date("to")?)?;
        let representation = match get("format") {
            None => default,
            Some("json") => Representation::Json,
            Some("csv") => Representation::Csv,
            Some("html") => Representation::Html,
            Some(_) => return Err("the parameter format is json, csv or html".to_owned()),
        };
        Ok(ReportRequest { tenant: tenant.to_owned(), period, representation, filter: PageFilter::from_query(pairs) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::report::Category;

    const QUERY: [(&str, &str); 5] = [
        ("tenant", "09162000"),
        ("from", "2026-11-01"),
        ("to", "2026-11-30"),
        ("category", "amount_mismatch"),
        ("q", "KZ"),
    ];

    #[test]
    fn a_complete_query_names_tenant_period_filter_and_the_default_representation() -> Result<(), String> {
        let request = ReportRequest::from_query(QUERY, Representation::Html)?;
        assert_eq!(request.tenant, "09162000");
        assert_eq!(
            (request.period.from.to_string(), request.period.to.to_string()),
            ("2026-11-01".into(), "2026-11-30".into())
        );
        assert_eq!(request.representation, Representation::Html);
        assert_eq!(request.filter.category, Some(Category::AmountMismatch));
        assert_eq!(request.filter.text.as_deref(), Some("KZ"));
        Ok(())
    }

    #[test]
    fn format_chooses_the_representation() -> Result<(), String> {
        let mut query = QUERY.to_vec();
        query.push(("format", "csv"));
        assert_eq!(ReportRequest::from_query(query.clone(), Representation::Json)?.representation, Representation::Csv);
        query.pop();
        query.push(("format", "pdf"));
        assert!(ReportRequest::from_query(query, Representation::Json).is_err());
        Ok(())
    }

    #[test]
    fn a_missing_tenant_or_a_bad_date_or_a_backwards_period_is_refused() {
        let without_tenant: Vec<_> = QUERY.iter().copied().filter(|(k, _)| *k != "tenant").collect();
        assert!(ReportRequest::from_query(without_tenant, Representation::Json).is_err_and(|e| e.contains("tenant")));
        let bad_date = QUERY.map(|(k, v)| if k == "from" { (k, "1.11.2026") } else { (k, v) });
        assert!(ReportRequest::from_query(bad_date, Representation::Json).is_err_and(|e| e.contains("from")));
        let backwards = QUERY.map(|(k, v)| if k == "from" { (k, "2026-12-24") } else { (k, v) });
        assert!(
            ReportRequest::from_query(backwards, Representation::Json).is_err_and(|e| e.contains("before it begins"))
        );
    }
}
