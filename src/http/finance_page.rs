//! The finance office's reconciliation page, rendered from a report: filters that work without
//! JavaScript (a GET form, so the filters are query parameters), totals, an inline SVG chart of daily
//! paid against settled sums, and the findings table. Owns the page's HTML and its filter parameters;
//! the report itself comes from `finance`. Everything from outside is escaped with `html::escape`;
//! the page loads nothing but pforte's own stylesheet.

use rust_decimal::Decimal;

use super::html::{document, escape};
use crate::finance::report::{Category, Finding, Report};
use crate::finance::request::FindingFilter;

/// The page's filters from its query parameters `category` and `q`. An unknown category shows
/// everything rather than nothing.
pub(super) fn page_filter<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FindingFilter {
    let mut filter = FindingFilter::default();
    for (key, value) in pairs {
        match key {
            "category" => filter.category = Category::parse(value),
            "q" if !value.trim().is_empty() => filter.text = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    filter
}

/// The page for a signed-in clerk: `staff` (who is signed in, the sign-out form) goes under the
/// title, `imports` (the upload form and the list of past imports) after the findings; both are
/// HTML their callers escaped.
pub(super) fn render_with(report: &Report, filter: &FindingFilter, staff: &str, imports: &str) -> String {
    let shown: Vec<&Finding> = report.findings.iter().filter(|f| filter.shows(f)).collect();
    let title =
        format!("Abgleich {} · {} bis {}", report.tenant, report.from.format("%d.%m.%Y"), report.to.format("%d.%m.%Y"));
    let body = format!(
        "<h1>{title}</h1>\n{staff}{form}\n{totals}\n<h2>Täglich bezahlt und abgerechnet</h2>\n{chart}\n\
         <h2>Befunde</h2>\n<p>{shown} von {all} Befunden angezeigt.</p>\n{table}\n{imports}",
        title = escape(&title),
        form = filter_form(report, filter),
        totals = totals(report, filter),
        chart = chart(report),
        shown = shown.len(),
        all = report.findings.len(),
        table = table(&shown),
    );
    document("de", &title, &body)
}

fn filter_form(report: &Report, filter: &FindingFilter) -> String {
    let mut options = format!("<option value=\"\"{}>alle</option>", selected(filter.category.is_none()));
    for category in Category::ALL {
        options.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>",
            category.as_str(),
            selected(filter.category == Some(category)),
            escape(category.label())
        ));
    }
    format!(
        "<form method=\"get\" action=\"\">\n\
         <input type=\"hidden\" name=\"tenant\" value=\"{tenant}\">\n\
         <label>von <input type=\"date\" name=\"from\" value=\"{from}\"></label>\n\
         <label>bis <input type=\"date\" name=\"to\" value=\"{to}\"></label>\n\
         <label>Kategorie <select name=\"category\">{options}</select></label>\n\
         <label>Suche <input type=\"search\" name=\"q\" value=\"{q}\"></label>\n\
         <button type=\"submit\">Anzeigen</button>\n</form>",
        tenant = escape(&report.tenant),
        from = report.from,
        to = report.to,
        q = escape(filter.text.as_deref().unwrap_or_default()),
    )
}

fn selected(is: bool) -> &'static str {
    if is {
        " selected"
    } else {
        ""
    }
}

/// Counts per category (each a link that filters by it) and the sums of each side.
fn totals(report: &Report, filter: &FindingFilter) -> String {
    let mut rows = String::new();
    for category in Category::ALL {
        let query = format!(
            "?tenant={}&from={}&to={}&category={}{}",
            url_part(&report.tenant),
            report.from,
            report.to,
            category.as_str(),
            filter.text.as_deref().map(|q| format!("&q={}", url_part(q))).unwrap_or_default()
        );
        rows.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>\n",
            escape(&query),
            escape(category.label()),
            report.count(category)
        ));
    }
    let t = &report.totals;
    format!(
        "<h2>Summen</h2>\n<table class=\"totals\">\n<tr><th>Kategorie</th><th>Befunde</th></tr>\n{rows}</table>\n\
         <table class=\"sums\">\n\
         <tr><th>bezahlt (pforte)</th><td>{}</td></tr>\n<tr><th>abgerechnet (brutto)</th><td>{}</td></tr>\n\
         <tr><th>Gebühren</th><td>{}</td></tr>\n<tr><th>Auszahlungen (netto)</th><td>{}</td></tr>\n\
         <tr><th>Kontoumsätze</th><td>{}</td></tr>\n</table>",
        euro(t.paid),
        euro(t.settled),
        euro(t.fees),
        euro(t.payouts),
        euro(t.bank)
    )
}

fn table(findings: &[&Finding]) -> String {
    let mut rows = String::new();
    for f in findings {
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            f.category.as_str(),
            escape(f.category.label()),
            escape(&f.subject),
            escape(&f.provider_reference()),
            escape(&f.kassenzeichen()),
            escape(&f.pforte_text()),
            escape(&f.settlement_text()),
            escape(&f.bank_text()),
            escape(&f.amounts_text()),
        ));
    }
    // Eight columns of references are wider than the page: the table scrolls sideways in its own
    // region (focusable, so the keyboard can scroll it too) instead of widening the whole page.
    format!(
        "<div class=\"scroll\" role=\"region\" aria-label=\"Befunde\" tabindex=\"0\">\n\
         <table class=\"findings\">\n<tr><th>Kategorie</th><th>Vorgang</th><th>Referenz des Anbieters</th>\
         <th>Kassenzeichen</th><th>pforte</th><th>Abrechnung</th>\
         <th>Bank</th><th>Beträge</th></tr>\n{rows}</table>\n</div>"
    )
}

/// German notation with two decimals: 1234.5 → `1234,50 €`.
fn euro(amount: Decimal) -> String {
    format!("{amount:.2} €").replace('.', ",")
}

/// Percent-encodes a query value (the tenant id and search text come from outside).
fn url_part(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Chart geometry, in SVG user units.
const WIDTH: i64 = 640;
const HEIGHT: i64 = 240;
const LEFT: i64 = 70;
const RIGHT: i64 = 10;
const TOP: i64 = 30;
const BOTTOM: i64 = 40;
const PLOT_HEIGHT: i64 = HEIGHT - TOP - BOTTOM;
const PAID_COLOUR: &str = "#1f5fa8";
const SETTLED_COLOUR: &str = "#d97b00";

/// The height of a bar for `amount` when `max` fills the plot, to two decimals (amounts stay exact
/// decimals; only the drawing is rounded).
pub(crate) fn bar_height(amount: Decimal, max: Decimal) -> Decimal {
    if max <= Decimal::ZERO || amount <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (amount * Decimal::from(PLOT_HEIGHT) / max).round_dp(2)
}

/// Two bars per day: paid in pforte and settled by the provider, with both axes labelled.
fn chart(report: &Report) -> String {
    let days = report.daily.len().max(1) as i64;
    let max = report.daily.iter().flat_map(|d| [d.paid, d.settled]).max().unwrap_or_default().max(Decimal::ZERO);
    let slot = Decimal::from(WIDTH - LEFT - RIGHT) / Decimal::from(days);
    let bar = (slot * Decimal::new(4, 1)).round_dp(2);
    let base = Decimal::from(TOP + PLOT_HEIGHT);
    let mut bars = String::new();
    let mut labels = String::new();
    let label_every = (days / 8).max(1) as usize;
    for (index, day) in report.daily.iter().enumerate() {
        let left = Decimal::from(LEFT) + slot * Decimal::from(index as i64);
        for (series, amount, colour, x) in [
            ("paid", day.paid, PAID_COLOUR, left + slot * Decimal::new(1, 1)),
            ("settled", day.settled, SETTLED_COLOUR, left + slot * Decimal::new(5, 1)),
        ] {
            let height = bar_height(amount, max);
            let verb = if series == "paid" { "bezahlt" } else { "abgerechnet" };
            bars.push_str(&format!(
                "<rect class=\"{series}\" data-date=\"{date}\" data-amount=\"{amount}\" x=\"{x}\" y=\"{y}\" \
                 width=\"{bar}\" height=\"{height}\" fill=\"{colour}\"><title>{label}: {verb} {euro}</title></rect>\n",
                date = day.date,
                x = x.round_dp(2),
                y = base - height,
                label = day.date.format("%d.%m.%Y"),
                euro = euro(amount),
            ));
        }
        if index % label_every == 0 || index + 1 == report.daily.len() {
            labels.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                (left + slot / Decimal::TWO).round_dp(2),
                TOP + PLOT_HEIGHT + 16,
                day.date.format("%d.%m.")
            ));
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\">\n\
         <title id=\"chart-title\">Täglich bezahlt (pforte) und abgerechnet (Anbieter)</title>\n\
         <desc id=\"chart-desc\">Je Tag zwei Balken: links bezahlt, rechts abgerechnet; höchster Wert {max_euro}.</desc>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"#333\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#333\"/>\n\
         <text x=\"{ylabel_x}\" y=\"{top_label_y}\" font-size=\"11\" text-anchor=\"end\">{max_euro}</text>\n\
         <text x=\"{ylabel_x}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\">0 €</text>\n\
         <text x=\"{LEFT}\" y=\"{x_title_y}\" font-size=\"11\">Tag</text>\n\
         <rect x=\"{legend_x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{PAID_COLOUR}\"/>\
         <text x=\"{legend_text_x}\" y=\"15\" font-size=\"11\">bezahlt</text>\n\
         <rect x=\"{legend2_x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{SETTLED_COLOUR}\"/>\
         <text x=\"{legend2_text_x}\" y=\"15\" font-size=\"11\">abgerechnet</text>\n\
         {bars}{labels}</svg>",
        max_euro = euro(max),
        right = WIDTH - RIGHT,
        ylabel_x = LEFT - 6,
        top_label_y = TOP + 4,
        x_title_y = HEIGHT - 6,
        legend_x = LEFT,
        legend_text_x = LEFT + 14,
        legend2_x = LEFT + 80,
        legend2_text_x = LEFT + 94,
    )
}

#[cfg(test)]
mod tests;
