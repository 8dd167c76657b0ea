//! The HTML every page of pforte shares: one document frame and one escaping function, so no page
//! can forget the referrer policy, the stylesheet or the escaping of outside text.

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` is plain text (escaped here), `body` is HTML the caller built with
/// [`escape`] around everything that came from outside.
pub(crate) fn document(lang: &str, title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="/assets/pforte.css">
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        lang = escape(lang),
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_neutralised() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_title_is_escaped_and_the_page_names_its_language() {
        let page = document("de", "<Titel>", "<p>ok</p>");
        assert!(page.contains("<html lang=\"de\">") && page.contains("&lt;Titel&gt;") && page.contains("<p>ok</p>"));
    }
}
