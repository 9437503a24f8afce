//! Unit tests of `svg` (kept in their own file beside it).

use super::*;

#[test]
fn smoothing_is_a_debiased_moving_average() {
    // α = 0.5 on [1, 3, 5]: m = 0.5, 1.75, 3.375; weights 0.5, 0.75, 0.875.
    let s = smooth(&[1.0, 3.0, 5.0], 0.5);
    let want = [1.0, 1.75 / 0.75, 3.375 / 0.875];
    for (a, b) in s.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{s:?}");
    }
    assert_eq!(smooth(&[2.0, 4.0], 0.0), vec![2.0, 4.0]);
    // A gap (NaN) passes through and does not poison what follows.
    let g = smooth(&[1.0, f64::NAN, 1.0], 0.9);
    assert!(g[1].is_nan() && (g[2] - 1.0).abs() < 1e-12, "{g:?}");
}

#[test]
fn a_chart_maps_the_data_range_onto_the_plot_area() {
    let s = Series { name: "run <a>".into(), colour: 0, points: vec![(0.0, 0.0), (10.0, 1.0)] };
    let svg = line_chart("reward", &[s]).unwrap();
    // x 0 → left edge 48, x 10 → 350; y 0 → bottom 190, y 1 → top 24.
    assert!(svg.contains(r#"points="48.0,190.0 350.0,24.0""#), "{svg}");
    assert_eq!(svg.matches("<polyline").count(), SMOOTHING.len());
    assert!(svg.contains("run &lt;a&gt;") && !svg.contains("<a>"), "names are escaped");
    // A run without data in this chart has no legend entry; each run keeps its colour.
    let two = [
        Series { name: "empty".into(), colour: 0, points: vec![] },
        Series { name: "full".into(), colour: 2, points: vec![(0.0, 1.0), (1.0, 2.0)] },
    ];
    let svg = line_chart("x", &two).unwrap();
    assert!(
        !svg.contains(">empty<") && svg.contains(">full<") && svg.contains(COLOURS[2]) && !svg.contains(COLOURS[0])
    );
    assert!(!svg.contains("http"), "no namespace URL inline");
    // One point is a dot; nothing finite is no chart.
    let dot = line_chart("x", &[Series { name: "r".into(), colour: 1, points: vec![(3.0, 2.0)] }]).unwrap();
    assert_eq!(dot.matches("<circle").count(), SMOOTHING.len());
    assert!(line_chart("x", &[Series { name: "r".into(), colour: 1, points: vec![(1.0, f64::NAN)] }]).is_none());
    assert!(line_chart("x", &[]).is_none());
}

#[test]
fn tick_labels_are_short() {
    assert_eq!(label(0.0), "0");
    assert_eq!(label(0.25), "0.25");
    assert_eq!(label(1.5), "1.5");
    assert_eq!(label(250.0), "250");
    assert_eq!(label(1e-5), "1.0e-5");
}

#[test]
fn a_standalone_chart_names_its_namespace_and_shows_one_smoothing_level() {
    let s = Series { name: "r".into(), colour: 0, points: vec![(0.0, 0.0), (1.0, 1.0)] };
    let file = standalone(&line_chart("x", &[s]).unwrap(), 2);
    assert!(file.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart""#), "{file}");
    assert!(file.contains("g.smooth-2{display:inline}") && file.contains(r#"g[class^="smooth-"]{display:none}"#));
}
