//! The page as text a language model can act on: one line per element worth acting on or
//! reading, `[ref] tag.class#id "text" value="…" (focused)` (the first CSS class only: pages
//! mark links and widgets by class), nested by indentation. Rendered from
//! MiniWoB's `core.getDOMInfo()` tree; refs are the ones `core.elementClick(ref)` takes.

use serde_json::Value;

/// Longest text shown for one element; longer text is cut with `…`.
const MAX_TEXT: usize = 80;
/// Most lines rendered; the rest is summarised so a big page cannot fill the context.
const MAX_LINES: usize = 80;

/// Renders a `getDOMInfo()` tree.
pub fn render(dom: &Value) -> String {
    let mut lines = Vec::new();
    let mut hidden = 0usize;
    walk(dom, 0, &mut lines, &mut hidden);
    if hidden > 0 {
        lines.push(format!("… ({hidden} more elements)"));
    }
    lines.join("\n")
}

fn is_interactive(tag: &str) -> bool {
    matches!(tag, "button" | "a" | "select" | "textarea" | "label" | "option") || tag.starts_with("input")
}

fn walk(node: &Value, depth: usize, lines: &mut Vec<String>, hidden: &mut usize) {
    let tag = node["tag"].as_str().unwrap_or("").to_ascii_lowercase();
    let text = node["text"].as_str().map(str::trim).unwrap_or("");
    let children = node["children"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    // Also shown: an element whose text is split around inline children (clicking it is how
    // some pages are used), and a named leaf (a coloured box, a grid cell).
    let holds_text = children.iter().any(|c| c["tag"] == "t");
    let named = |k: &str| node[k].as_str().is_some_and(|v| !v.trim().is_empty());
    let named_leaf = children.is_empty() && (named("id") || named("classes"));
    let shown = tag == "t" || !text.is_empty() || is_interactive(&tag) || holds_text || named_leaf;
    if shown {
        if lines.len() >= MAX_LINES {
            *hidden += 1;
        } else {
            lines.push(format!("{}{}", "  ".repeat(depth), line(node, &tag, text)));
        }
    }
    for c in children {
        walk(c, depth + shown as usize, lines, hidden);
    }
}

fn line(node: &Value, tag: &str, text: &str) -> String {
    if tag == "t" {
        return quote(text);
    }
    let mut s = match node["ref"].as_i64() {
        Some(r) => format!("[{r}] {tag}"),
        None => tag.to_string(),
    };
    if let Some(class) = node["classes"].as_str().and_then(|c| c.split_whitespace().next()) {
        s.push('.');
        s.push_str(class);
    }
    if let Some(id) = node["id"].as_str().filter(|i| !i.is_empty()) {
        s.push('#');
        s.push_str(id);
    }
    if !text.is_empty() {
        s.push(' ');
        s.push_str(&quote(text));
    }
    match &node["value"] {
        Value::Bool(b) => s.push_str(if *b { " checked" } else { " unchecked" }),
        Value::String(v) => s.push_str(&format!(" value={}", quote(v))),
        _ => {}
    }
    // A box with no text may be told apart only by its colour (click-color, grids).
    let leaf = node["children"].as_array().is_none_or(Vec::is_empty) && !is_interactive(tag);
    if let Some(bg) = node["bgColor"].as_str().filter(|c| leaf && text.is_empty() && !c.starts_with("rgba(0, 0, 0, 0"))
    {
        s.push_str(&format!(" bg={bg}"));
    }
    if node["focused"].as_bool() == Some(true) {
        s.push_str(" (focused)");
    }
    s
}

fn quote(text: &str) -> String {
    let cut: String = text.chars().take(MAX_TEXT).collect();
    let more = if text.chars().count() > MAX_TEXT { "…" } else { "" };
    format!("\"{}{more}\"", cut.replace('"', "'"))
}

/// One element of a rendered page, read back (the reference agents act on what the policy
/// sees, so they test the rendering too).
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub r#ref: i64,
    pub tag: String,
    pub class: String,
    pub id: String,
    pub text: String,
    pub value: Option<String>,
}

/// Parses the `[ref] tag.class#id "text" value="v"` lines of `render`'s output.
pub fn parse(rendered: &str) -> Vec<Element> {
    rendered
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('[')?;
            let (r, rest) = rest.split_once("] ")?;
            let (head, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let (head, id) = head.split_once('#').unwrap_or((head, ""));
            let (tag, class) = head.split_once('.').unwrap_or((head, ""));
            let (text, rest) = match rest.strip_prefix('"') {
                Some(t) => {
                    let (t, after) = t.split_once('"').unwrap_or((t, ""));
                    (t.to_string(), after.trim_start())
                }
                None => (String::new(), rest),
            };
            let value = rest.strip_prefix("value=\"").and_then(|v| v.split_once('"')).map(|(v, _)| v.to_string());
            let (tag, class, id) = (tag.to_string(), class.to_string(), id.to_string());
            Some(Element { r#ref: r.parse().ok()?, tag, class, id, text, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_what_can_be_acted_on_and_reads_back() {
        let dom = json!({"tag": "BODY", "ref": 1, "children": [
            {"tag": "DIV", "ref": 2, "id": "area", "children": [
                {"tag": "BUTTON", "ref": 3, "text": "Say \"ok\"", "classes": "big red", "children": []},
                {"tag": "INPUT_text", "ref": 4, "id": "username", "value": "bob", "focused": true, "children": []},
                {"tag": "INPUT_checkbox", "ref": 5, "value": false, "children": []},
                {"tag": "t", "ref": -1, "text": "lorem ipsum", "children": []},
                {"tag": "SPAN", "ref": 6, "text": "", "children": []},
                {"tag": "DIV", "ref": 7, "classes": "cell red", "bgColor": "rgb(255, 0, 0)", "children": []},
                {"tag": "H3", "ref": 8, "children": [{"tag": "t", "ref": -2, "text": "Section 1", "children": []}]},
            ]}
        ]});
        let text = render(&dom);
        assert_eq!(
            text,
            "[2] div#area\n  [3] button.big \"Say 'ok'\"\n  [4] input_text#username value=\"bob\" (focused)\n  \
             [5] input_checkbox unchecked\n  \"lorem ipsum\"\n  [7] div.cell bg=rgb(255, 0, 0)\n  [8] h3\n    \"Section 1\""
        );
        let els = parse(&text);
        assert_eq!(els.len(), 6);
        let els = &els[1..];
        assert_eq!((els[0].r#ref, els[0].tag.as_str(), els[0].class.as_str()), (3, "button", "big"));
        assert_eq!(els[0].text, "Say 'ok'");
        assert_eq!((els[1].id.as_str(), els[1].value.as_deref()), ("username", Some("bob")));
    }

    #[test]
    fn big_pages_are_cut_with_a_count() {
        let kids: Vec<Value> =
            (0..100).map(|i| json!({"tag": "BUTTON", "ref": i, "text": "b", "children": []})).collect();
        let text = render(&json!({"tag": "BODY", "children": kids}));
        assert_eq!(text.lines().count(), MAX_LINES + 1);
        assert!(text.ends_with("… (20 more elements)"));
        let long = render(&json!({"tag": "A", "ref": 1, "text": "x".repeat(200), "children": []}));
        assert!(long.ends_with("…\"") && long.chars().count() < 100);
    }
}
