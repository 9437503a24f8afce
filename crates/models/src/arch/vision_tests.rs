use super::*;
use image::{Rgb, RgbImage};

fn cfg() -> VisionConfig {
    VisionConfig { side: 4, patch: 2, image_token: 9 }
}

fn url(img: &RgbImage) -> String {
    kaizen_core::image::png_url(img).unwrap()
}

#[test]
fn patches_are_cut_row_major_with_values_in_minus_one_to_one() {
    // Pixel (x, y) has red = 10·y + x, green 0, blue 255.
    let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(10 * y + x) as u8, 0, 255]));
    let v = cfg().patch_pixels(&url(&img)).unwrap();
    assert_eq!(v.len(), 4 * 12);
    let red = |i: usize| ((v[i * 3] + 1.0) * 127.5).round() as u32;
    // Patch 0 (top left): pixels (0,0) (1,0) (0,1) (1,1); patch 1 (top right) starts at (2,0);
    // patch 2 (bottom left) at (0,2).
    assert_eq!((0..4).map(red).collect::<Vec<_>>(), [0, 1, 10, 11]);
    assert_eq!((4..8).map(red).collect::<Vec<_>>(), [2, 3, 12, 13]);
    assert_eq!((8..12).map(red).collect::<Vec<_>>(), [20, 21, 30, 31]);
    assert_eq!((v[1], v[2]), (-1.0, 1.0));
}

#[test]
fn a_larger_picture_is_resized_and_a_corrupt_one_is_an_error() {
    let img = RgbImage::from_pixel(16, 16, Rgb([255, 0, 0]));
    let v = cfg().patch_pixels(&url(&img)).unwrap();
    assert_eq!(v.len(), 48);
    assert!(v.chunks(3).all(|p| p == [1.0, -1.0, -1.0]));
    let bad = kaizen_core::image::data_url("image/png", b"not a png");
    assert!(cfg().patch_pixels(&bad).is_err());
    assert!(cfg().pixel_rows(&[url(&img), bad], &Device::Cpu).unwrap_err().starts_with("picture 1"));
}

#[test]
fn patch_embedding_matches_hand_computed_values() {
    // Two pictures of two patches with two values each; width 2.
    let d = Device::Cpu;
    let pixels = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 1.], [2., -1.]], &d).unwrap();
    let w = Tensor::new(&[[1f32, 2.], [3., -1.]], &d).unwrap();
    let b = Tensor::new(&[0.5f32, 0.], &d).unwrap();
    let pos = Tensor::new(&[[0f32, 10.], [100., 0.]], &d).unwrap();
    let e = embed_patches(&pixels, &w, &b, &pos).unwrap().to_vec2::<f32>().unwrap();
    // W·p: [1,3], [2,-1], [3,2], [0,7]; + b; + pos of patch 0, 1, 0, 1.
    assert_eq!(e, vec![vec![1.5, 13.], vec![102.5, -1.], vec![3.5, 12.], vec![100.5, 7.]]);
    assert!(embed_patches(&pixels.narrow(0, 0, 3).unwrap(), &w, &b, &pos).is_err());
}

#[test]
fn splice_puts_picture_rows_at_the_placeholders_in_order() {
    let d = Device::Cpu;
    let x = Tensor::new(&[[0f32], [1.], [2.], [3.]], &d).unwrap();
    let pics = Tensor::new(&[[7f32], [8.]], &d).unwrap();
    let ids = [5u32, 9, 6, 9];
    let at = placeholder_positions(&ids, 9);
    assert_eq!(at, [1, 3]);
    let y = splice(&x, &at, &pics).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(y, [0., 7., 2., 8.]);
    assert!(splice(&x, &[1], &pics).is_err());
}

#[test]
fn placeholders_go_before_the_text_one_run_per_picture() {
    let c = cfg();
    let img = url(&RgbImage::new(4, 4));
    let m = Message { images: vec![img.clone(), img], ..Message::user("what?") };
    let out = c.with_placeholders(&[Message::system("s"), m]);
    assert_eq!(out[0].content, "s");
    assert_eq!(out[1].content, format!("{}what?", IMAGE_TOKEN.repeat(8)));
    assert!(out[1].images.is_empty());
    assert!(VisionConfig { side: 5, patch: 2, image_token: 0 }.validate().is_err());
}

#[test]
fn the_mask_offsets_only_the_placeholder() {
    let m = logit_mask(4, 2, &Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(m, [0., 0., IMAGE_LOGIT, 0.]);
}
