use super::*;

#[test]
fn a_data_url_round_trips_and_its_hash_is_the_sha256_of_its_bytes() {
    let url = data_url("image/png", b"abc");
    assert_eq!(url, "data:image/png;base64,YWJj");
    assert_eq!(data_url_bytes(&url).unwrap(), ("image/png".to_string(), b"abc".to_vec()));
    // SHA-256("abc"), the FIPS 180-2 test vector.
    assert_eq!(content_hash(&url), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn bad_data_urls_say_what_is_wrong() {
    assert!(data_url_bytes("https://x/y.png").unwrap_err().contains("not a data: URL"));
    assert!(data_url_bytes("data:image/png,abc").unwrap_err().contains("not base64"));
    assert!(data_url_bytes("data:image/png;base64,@@@").unwrap_err().contains("bad base64"));
    // A URL that is not a data URL is identified by its text.
    assert_eq!(content_hash("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
