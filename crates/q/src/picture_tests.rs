use super::*;
use image::{Rgb, RgbImage};

fn url(img: &RgbImage) -> String {
    kaizen_core::image::png_url(img).unwrap()
}

#[test]
fn a_thumbnail_is_the_resized_picture_scaled_to_minus_one_one() {
    // 2×2 → side 2: no resize. Pixels row by row, each channel v / 127.5 − 1.
    let img = RgbImage::from_fn(2, 2, |x, y| match (x, y) {
        (0, 0) => Rgb([0, 255, 51]),
        (1, 0) => Rgb([255, 0, 0]),
        (0, 1) => Rgb([0, 0, 255]),
        _ => Rgb([102, 153, 204]),
    });
    let t = thumbnail(Some(&url(&img)), 2).unwrap();
    let want = [-1.0, 1.0, -0.6, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0, -0.2, 0.2, 0.6];
    assert_eq!(t.len(), 12);
    for (got, want) in t.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{t:?}");
    }
    // A flat 64×64 picture stays flat at any side: every value its colour's.
    let flat = RgbImage::from_pixel(64, 64, Rgb([255, 0, 255]));
    let t = thumbnail(Some(&url(&flat)), 4).unwrap();
    assert_eq!(t.len(), len(4));
    assert!(t.chunks(3).all(|p| p == [1.0, -1.0, 1.0]));
    assert_eq!(thumbnail(None, 3).unwrap(), vec![0.0; 27]);
    assert!(thumbnail(Some("data:image/png;base64,AAAA"), 4).is_err());
}

#[test]
fn the_latest_picture_is_the_last_shown_since_the_task() {
    let pic = |k: u8| url(&RgbImage::from_pixel(2, 2, Rgb([k, k, k])));
    let with = |m: Message, p: Vec<String>| Message { images: p, ..m };
    let example = with(Message::user("example"), vec![pic(1)]);
    let task = with(Message::user("task"), vec![pic(2)]);
    let call = Message::assistant("crop");
    let crop = with(Message::new(Role::Tool, "cropped"), vec![pic(3), pic(4)]);
    assert_eq!(latest_picture(&[example.clone(), task.clone()]), Some(pic(2).as_str()));
    assert_eq!(latest_picture(&[example.clone(), task.clone(), call.clone(), crop]), Some(pic(4).as_str()));
    // The example's picture is not the task's state.
    assert_eq!(latest_picture(&[example, Message::user("bare task"), call]), None);
    assert_eq!(latest_picture(&[]), None);
}
