use super::ops::{crop, rotate, shrink, zoom, PixelBox};
use super::*;
use image::Rgb;
use image::RgbImage;
use kaizen_core::image::content_hash;
use kaizen_core::ToolCall;
use serde_json::json;

/// A `w`×`h` image whose pixel (x, y) is (x, y, 7).
fn ramp(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]))
}

fn pixels(img: &RgbImage) -> Vec<[u8; 3]> {
    img.pixels().map(|p| p.0).collect()
}

#[test]
fn crop_zoom_rotate_and_shrink_by_hand() {
    let img = ramp(4, 3);
    let b = PixelBox { x0: 1, y0: 1, x1: 3, y1: 2 };
    assert_eq!(pixels(&crop(&img, b)), vec![[1, 1, 7], [2, 1, 7]]);
    let z = zoom(&img, b, 2);
    assert_eq!(z.dimensions(), (4, 2));
    assert_eq!(
        pixels(&z),
        vec![[1, 1, 7], [1, 1, 7], [2, 1, 7], [2, 1, 7], [1, 1, 7], [1, 1, 7], [2, 1, 7], [2, 1, 7]]
    );
    // [A B] turned a quarter counter-clockwise stands up as B over A.
    let ab = ramp(2, 1);
    assert_eq!(pixels(&rotate(&ab, 90).unwrap()), vec![[1, 0, 7], [0, 0, 7]]);
    assert_eq!(pixels(&rotate(&ab, -90).unwrap()), vec![[0, 0, 7], [1, 0, 7]]);
    assert_eq!(pixels(&rotate(&ab, 180).unwrap()), vec![[1, 0, 7], [0, 0, 7]]);
    assert_eq!(rotate(&ab, 360).unwrap(), ab);
    assert!(rotate(&ab, 45).unwrap_err().contains("multiples of 90"));
    // The 2×2 block (0,0,7) (1,0,7) (0,1,7) (1,1,7): means 0.5 → 1 (half up), 0.5 → 1, 7.
    assert_eq!(pixels(&shrink(&ramp(3, 2), 2)), vec![[1, 1, 7]]);
}

#[test]
fn boxes_are_checked_against_the_picture() {
    let ok = PixelBox::parse(&json!([0, 0.4, 64, 63.6]), 64, 64).unwrap();
    assert_eq!(ok, PixelBox { x0: 0, y0: 0, x1: 64, y1: 64 });
    for (bad, says) in [
        (json!([0, 0, 65, 10]), "outside the 64×64"),
        (json!([-1, 0, 5, 5]), "outside"),
        (json!([5, 5, 5, 9]), "empty"),
        (json!([0, 0, 5]), "four numbers"),
        (json!("0,0,5,5"), "four numbers"),
        (json!([0, 0, "a", 5]), "four numbers"),
    ] {
        let e = PixelBox::parse(&bad, 64, 64).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn decoding_refuses_what_is_not_a_readable_png_or_jpeg() {
    let url = png_url(&ramp(5, 4)).unwrap();
    assert!(png_url(&RgbImage::new(0, 3)).unwrap_err().contains("no pixels"));
    assert_eq!(decode_url(&url).unwrap(), ramp(5, 4));
    // One encoder with fixed settings: the same pixels, the same bytes, the same hash.
    assert_eq!(content_hash(&png_url(&ramp(5, 4)).unwrap()), content_hash(&url));
    let (_, png) = kaizen_core::image::data_url_bytes(&url).unwrap();
    let truncated = kaizen_core::image::data_url("image/png", &png[..png.len() / 2]);
    assert!(decode_url(&truncated).unwrap_err().contains("corrupt"), "{:?}", decode_url(&truncated));
    let gif = kaizen_core::image::data_url("image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    assert!(decode_url(&gif).unwrap_err().contains("PNG and JPEG"), "{:?}", decode_url(&gif));
    let noise = kaizen_core::image::data_url("image/png", b"hello");
    assert!(decode_url(&noise).unwrap_err().contains("not an image"));
    let wide = png_url(&RgbImage::new(MAX_SIDE + 1, 1)).unwrap();
    assert!(decode_url(&wide).unwrap_err().contains("4097×1"));
    let huge = vec![0u8; MAX_IMAGE_BYTES + 1];
    assert!(decode("image/png", &huge).unwrap_err().contains("limit"));
    assert!(decode_url("https://example.com/a.png").unwrap_err().contains("not a data: URL"));
}

fn call(name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall { id: String::new(), name: name.into(), arguments }
}

#[test]
fn each_image_tool_answers_with_its_picture_or_a_counted_error() {
    let tools = ImageTools::new(ramp(8, 6));
    let names: Vec<String> = tools.specs().iter().filter_map(|s| s.name().map(String::from)).collect();
    assert_eq!(names, IMAGE_TOOLS);
    let o = tools.act(&call("crop", json!({"box": [2, 1, 4, 3]})));
    assert!(o.ok, "{}", o.content);
    assert_eq!(pixels(&decode_url(&o.images[0]).unwrap()), vec![[2, 1, 7], [3, 1, 7], [2, 2, 7], [3, 2, 7]]);
    let o = tools.act(&call("zoom", json!({"box": [7, 5, 8, 6], "factor": 3})));
    assert!(o.ok && o.content.contains("3×3"), "{}", o.content);
    assert_eq!(pixels(&decode_url(&o.images[0]).unwrap()), vec![[7, 5, 7]; 9]);
    let o = tools.act(&call("rotate", json!({"degrees": 90})));
    assert_eq!(decode_url(&o.images[0]).unwrap().dimensions(), (6, 8));
    for (c, says) in [
        (call("crop", json!({"box": [0, 0, 9, 2]})), "outside the 8×6"),
        (call("zoom", json!({"box": [0, 0, 2, 2], "factor": 9})), "factor"),
        (call("zoom", json!({"box": [0, 0, 2, 2]})), "factor"),
        (call("rotate", json!({"degrees": 30})), "multiples of 90"),
        (call("crop", json!({})), "four numbers"),
        (call("blur", json!({})), "unknown image tool"),
    ] {
        let o = tools.act(&c);
        assert!(!o.ok && o.images.is_empty() && o.content.contains(says), "{}: {}", c.name, o.content);
    }
    let big = ImageTools::new(RgbImage::new(200, 200));
    let o = big.act(&call("zoom", json!({"box": [0, 0, 200, 200], "factor": 8})));
    assert!(!o.ok && o.content.contains("1024"), "{}", o.content);
}
