//! Unit tests of `attention` (kept in their own file beside it).

use super::*;
use candle_core::{Device, Tensor};

#[test]
fn matches_softmax_attention_by_hand() {
    // One head, d = 2, two keys: scores q·k = [1, 3] (scale 1) → p = [e/(e+e³), e³/(e+e³)]
    // = [0.119203, 0.880797]; o = 0.119203·[1, 0] + 0.880797·[0, 2] = [0.119203, 1.761594].
    let dev = Device::Cpu;
    let q = Tensor::new(&[1f32, 1.0], &dev).unwrap().reshape((1, 1, 1, 2)).unwrap();
    let k = Tensor::new(&[1f32, 0.0, 1.0, 2.0], &dev).unwrap().reshape((1, 1, 2, 2)).unwrap();
    let v = Tensor::new(&[1f32, 0.0, 0.0, 2.0], &dev).unwrap().reshape((1, 1, 2, 2)).unwrap();
    let o = q
        .apply_op3_no_bwd(&k, &v, &DecodeAttention { scale: 1.0, spans: vec![KeySpan { row: 0, start: 0, end: 2 }] })
        .unwrap();
    let o = o.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!((o[0] - 0.119203).abs() < 1e-5 && (o[1] - 1.761594).abs() < 1e-5, "{o:?}");
}

#[test]
fn grouped_heads_and_strided_cache_views_match_the_generic_path() {
    let dev = Device::Cpu;
    let (b, nh, nkv, t, cap, d) = (2, 6, 2, 5, 9, 8);
    let q = Tensor::randn(0f32, 1.0, (b, nh, 1, d), &dev).unwrap();
    let kbuf = Tensor::randn(0f32, 1.0, (b, nkv, cap, d), &dev).unwrap();
    let vbuf = Tensor::randn(0f32, 1.0, (b, nkv, cap, d), &dev).unwrap();
    let (k, v) = (kbuf.narrow(2, 0, t).unwrap(), vbuf.narrow(2, 0, t).unwrap());
    let spans = (0..b).map(|row| KeySpan { row, start: 0, end: t }).collect();
    let got = q.apply_op3_no_bwd(&kbuf, &vbuf, &DecodeAttention { scale: 0.5, spans }).unwrap();
    // Generic: repeat kv heads, softmax(q kᵀ · scale) v.
    let rep = nh / nkv;
    let expand = |x: &Tensor| {
        x.contiguous()
            .unwrap()
            .unsqueeze(2)
            .unwrap()
            .expand((b, nkv, rep, t, d))
            .unwrap()
            .reshape((b, nh, t, d))
            .unwrap()
    };
    let (ke, ve) = (expand(&k), expand(&v));
    let s = (q.matmul(&ke.t().unwrap()).unwrap() * 0.5).unwrap();
    let want = candle_nn::ops::softmax_last_dim(&s).unwrap().matmul(&ve).unwrap();
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn each_query_reads_only_its_own_span_of_rows() {
    // Query 0 reads row 1, positions 2..4; query 1 reads row 0, position 0 only. Reading one
    // key returns its value exactly; the span of two matches the generic path on those keys.
    let dev = Device::Cpu;
    let (rows, cap, d) = (2, 5, 16);
    let kbuf = Tensor::randn(0f32, 1.0, (rows, 1, cap, d), &dev).unwrap();
    let vbuf = Tensor::randn(0f32, 1.0, (rows, 1, cap, d), &dev).unwrap();
    let q = Tensor::randn(0f32, 1.0, (2, 1, 1, d), &dev).unwrap();
    let spans = vec![KeySpan { row: 1, start: 2, end: 4 }, KeySpan { row: 0, start: 0, end: 1 }];
    let got = q.apply_op3_no_bwd(&kbuf, &vbuf, &DecodeAttention { scale: 0.25, spans }).unwrap();
    let got1 = got.get(1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let v00 = vbuf.get(0).unwrap().get(0).unwrap().get(0).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got1, v00);
    let (k, v) = (kbuf.get(1).unwrap().narrow(1, 2, 2).unwrap(), vbuf.get(1).unwrap().narrow(1, 2, 2).unwrap());
    let q0 = q.get(0).unwrap();
    let s = (q0.matmul(&k.t().unwrap()).unwrap() * 0.25).unwrap();
    let want = candle_nn::ops::softmax_last_dim(&s).unwrap().matmul(&v).unwrap();
    let diff = (got.get(0).unwrap() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "{diff}");
    // A span outside the buffer is an error, not a read out of bounds.
    let bad = vec![KeySpan { row: 2, start: 0, end: 1 }, KeySpan { row: 0, start: 0, end: 1 }];
    assert!(q.apply_op3_no_bwd(&kbuf, &vbuf, &DecodeAttention { scale: 1.0, spans: bad }).is_err());
}
