//! Unit tests of `agents` (kept in their own file beside it).

use super::*;

fn el(r: i64, tag: &str, id: &str, text: &str, value: Option<&str>) -> Element {
    let (tag, class, id, text) = (tag.into(), String::new(), id.into(), text.into());
    Element { r#ref: r, tag, class, id, text, value: value.map(str::to_string) }
}

#[test]
fn oracle_fills_fields_then_submits() {
    let u = "Enter the username \"kiera\" and the password \"x9\" into the text fields and press login.";
    let mut els = vec![
        el(3, "input_text", "username", "", Some("")),
        el(4, "input_password", "password", "", Some("")),
        el(5, "button", "subbtn", "Login", None),
    ];
    assert!(oracle_action(u, &els).unwrap().contains("{\"ref\":3,\"text\":\"kiera\"}"));
    els[0].value = Some("kiera".into());
    assert!(oracle_action(u, &els).unwrap().contains("{\"ref\":4,\"text\":\"x9\"}"));
    els[1].value = Some("x9".into());
    assert!(oracle_action(u, &els).unwrap().contains("\"click\""));
    assert_eq!(oracle_action("Drag the circle.", &els), None);
}

#[test]
fn oracle_picks_the_named_button() {
    let els = vec![el(1, "button", "", "no", None), el(2, "button", "", "Ok", None)];
    assert!(oracle_action("Click on the \"ok\" button.", &els).unwrap().contains("\"ref\":2"));
    assert!(oracle_action("Click button ONE.", &els).is_none());
}
