use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::finance::report::{DailyTotal, SettlementEvidence, Totals};
use crate::registry::SettlementKind;

fn render(report: &Report, filter: &FindingFilter) -> String {
    render_with(report, filter, "", "")
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::MAX)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default()
}

fn finding(category: Category, subject: &str, gross: &str) -> Finding {
    Finding {
        category,
        subject: subject.into(),
        pforte: None,
        settlement: vec![SettlementEvidence {
            import_id: "imp_a".into(),
            line: 2,
            transaction: subject.into(),
            kind: SettlementKind::Payment,
            gross: dec(gross),
            fee: Decimal::ZERO,
            payout_reference: "PO-1".into(),
            booked_on: day(29),
        }],
        payout: None,
        bank: None,
    }
}

fn report() -> Report {
    let findings = vec![
        finding(Category::Matched, "T-ok", "12.00"),
        finding(Category::UnknownToPforte, "<script>alert(1)</script>", "3.00"),
        finding(Category::AmountMismatch, "T-mismatch", "19.00"),
    ];
    let mut counts: BTreeMap<Category, usize> = Category::ALL.into_iter().map(|c| (c, 0)).collect();
    for f in &findings {
        *counts.entry(f.category).or_default() += 1;
    }
    Report {
        tenant: "09162000".into(),
        from: day(28),
        to: day(30),
        findings,
        totals: Totals {
            findings: counts,
            paid: dec("67.00"),
            settled: dec("46.00"),
            fees: dec("1.10"),
            payouts: dec("49.80"),
            bank: dec("159.00"),
        },
        daily: vec![
            DailyTotal { date: day(28), paid: Decimal::ZERO, settled: Decimal::ZERO },
            DailyTotal { date: day(29), paid: dec("45.00"), settled: dec("36.00") },
            DailyTotal { date: day(30), paid: dec("22.00"), settled: dec("10.00") },
        ],
    }
}

/// The value of `attribute` in the first `<rect` carrying all of `marks`.
fn rect_attribute(svg: &str, marks: &[&str], attribute: &str) -> Option<String> {
    let rect = svg.split("<rect").skip(1).find(|r| marks.iter().all(|m| r.contains(m)))?;
    let start = rect.find(&format!(" {attribute}=\""))? + attribute.len() + 3;
    let end = rect[start..].find('"')? + start;
    Some(rect[start..end].to_owned())
}

#[test]
fn each_bar_stands_for_its_days_total_in_proportion_to_the_largest() {
    let page = render(&report(), &FindingFilter::default());
    let plot = Decimal::from(PLOT_HEIGHT);
    let largest = dec("45.00");
    for daily in report().daily {
        for (series, amount) in [("paid", daily.paid), ("settled", daily.settled)] {
            let marks = [format!("class=\"{series}\""), format!("data-date=\"{}\"", daily.date)];
            let marks: Vec<&str> = marks.iter().map(String::as_str).collect();
            let amount_attr = rect_attribute(&page, &marks, "data-amount");
            assert_eq!(amount_attr.as_deref().map(dec), Some(amount), "{series} {}", daily.date);
            let height = rect_attribute(&page, &marks, "height").map(|h| dec(&h));
            assert_eq!(height, Some((amount * plot / largest).round_dp(2)), "{series} {}", daily.date);
            let y = rect_attribute(&page, &marks, "y").map(|y| dec(&y));
            assert_eq!(
                y.zip(height).map(|(y, h)| y + h),
                Some(Decimal::from(TOP + PLOT_HEIGHT)),
                "bars stand on the axis"
            );
        }
    }
    assert_eq!(rect_attribute(&page, &["class=\"paid\"", "2026-11-29"], "height").as_deref(), Some("170"));
}

#[test]
fn the_chart_has_a_title_axis_labels_and_no_external_assets() {
    let page = render(&report(), &FindingFilter::default());
    assert!(page.contains("<title id=\"chart-title\">") && page.contains("aria-labelledby=\"chart-title chart-desc\""));
    assert!(page.contains(">45,00 €</text>") && page.contains(">0 €</text>"), "value axis");
    assert!(page.contains(">28.11.</text>") && page.contains(">30.11.</text>"), "day axis");
    assert!(!page.contains("<script") && !page.contains("<img"), "no scripts, no images");
    let outside: Vec<&str> = page.match_indices("http").map(|(i, _)| &page[i..(i + 30).min(page.len())]).collect();
    assert!(outside.iter().all(|s| s.starts_with("http://www.w3.org/2000/svg")), "{outside:?}");
}

#[test]
fn an_empty_report_draws_zero_height_bars() {
    let mut empty = report();
    empty.findings.clear();
    for day in &mut empty.daily {
        day.paid = Decimal::ZERO;
        day.settled = Decimal::ZERO;
    }
    let page = render(&empty, &FindingFilter::default());
    assert_eq!(rect_attribute(&page, &["class=\"settled\"", "2026-11-30"], "height").as_deref(), Some("0"));
    assert!(page.contains("0 von 0 Befunden"));
}

#[test]
fn every_finding_is_a_row_and_outside_text_is_escaped() {
    let page = render(&report(), &FindingFilter::default());
    assert_eq!(page.matches("<tr class=\"").count(), 3);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>alert"));
}

#[test]
fn the_category_filter_keeps_only_its_rows_and_is_preselected() {
    let filter = page_filter([("category", "amount_mismatch"), ("tenant", "09162000")]);
    let page = render(&report(), &filter);
    assert_eq!(page.matches("<tr class=\"").count(), 1);
    assert!(page.contains("<tr class=\"amount_mismatch\">"));
    assert!(page.contains("<option value=\"amount_mismatch\" selected>"));
    assert!(page.contains("1 von 3 Befunden"));
}

#[test]
fn the_text_filter_searches_subject_and_evidence_ignoring_case() {
    let page = render(&report(), &page_filter([("q", "t-MISMATCH")]));
    assert_eq!(page.matches("<tr class=\"").count(), 1);
    assert!(page.contains("value=\"t-MISMATCH\""), "the search stays in its field");
    let by_evidence = render(&report(), &page_filter([("q", "gross 12.00")]));
    assert_eq!(by_evidence.matches("<tr class=\"").count(), 1);
}

#[test]
fn an_unknown_category_shows_everything() {
    let filter = page_filter([("category", "<bogus>")]);
    assert_eq!(filter, FindingFilter::default());
    assert_eq!(render(&report(), &filter).matches("<tr class=\"").count(), 3);
}

#[test]
fn category_links_keep_period_and_search_and_are_encoded() {
    let page = render(&report(), &page_filter([("q", "a&b")]));
    assert!(
        page.contains(
            "href=\"?tenant=09162000&amp;from=2026-11-28&amp;to=2026-11-30&amp;category=matched&amp;q=a%26b\""
        ),
        "{page}"
    );
}

#[test]
fn totals_show_each_sides_sum_in_euro() {
    let page = render(&report(), &FindingFilter::default());
    assert!(
        page.contains("<td>67,00 €</td>") && page.contains("<td>46,00 €</td>") && page.contains("<td>159,00 €</td>")
    );
}
