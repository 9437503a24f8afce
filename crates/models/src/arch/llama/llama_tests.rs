//! Unit tests of `llama` (kept in their own file beside it).

use super::*;

fn kv(vals: &[f32]) -> Tensor {
    // [b=1, heads=1, s, d=2]
    Tensor::from_vec(vals.to_vec(), (1, 1, vals.len() / 2, 2), &Device::Cpu).unwrap()
}

#[test]
fn cache_appends_in_place_grows_and_clones_deeply() {
    let mut c = KvCache { layers: vec![None], lens: vec![0], last: vec![None], capacity_hint: 2 };
    let put = |c: &mut KvCache, vals: &[f32]| {
        let (k, _) = c.write(0, &kv(vals), &kv(&vec![0.; vals.len()]), &[0]).unwrap();
        c.advance(&[0], vals.len() / 2);
        k.narrow(2, 0, c.len()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(put(&mut c, &[1., 2., 3., 4.]), vec![1., 2., 3., 4.]);
    let snapshot = c.clone();
    // Past capacity: the buffer grows and keeps what it had.
    assert_eq!(put(&mut c, &[5., 6.]), vec![1., 2., 3., 4., 5., 6.]);
    // Writing into the clone does not touch the original.
    let mut fork = snapshot;
    assert_eq!(put(&mut fork, &[9., 9.]), vec![1., 2., 3., 4., 9., 9.]);
    assert_eq!(put(&mut c, &[7., 8.]), vec![1., 2., 3., 4., 5., 6., 7., 8.]);
    let two = c.repeat_batch(2).unwrap().select_rows(&[1]).unwrap();
    assert_eq!(two.layers[0].as_ref().unwrap().0.dims4().unwrap().0, 1);
    assert_eq!(two.lens, vec![4]);
}

#[test]
fn rows_are_written_at_their_own_positions() {
    let mut c = KvCache::with_rows(1, 2);
    c.reserve(4);
    c.write(0, &kv(&[1., 1.]), &kv(&[0.; 2]), &[1]).unwrap();
    c.advance(&[1], 1);
    // Both rows in one write: row 0 at position 0, row 1 at position 1.
    let two = Tensor::from_vec(vec![2f32, 2., 3., 3.], (2, 1, 1, 2), &Device::Cpu).unwrap();
    let (k, _) = c.write(0, &two, &two, &[0, 1]).unwrap();
    c.advance(&[0, 1], 1);
    assert_eq!((c.row_len(0), c.row_len(1), c.len()), (1, 2, 2));
    let row = |r: usize| k.get(r).unwrap().narrow(1, 0, c.row_len(r)).unwrap().flatten_all().unwrap();
    assert_eq!(row(0).to_vec1::<f32>().unwrap(), vec![2., 2.]);
    assert_eq!(row(1).to_vec1::<f32>().unwrap(), vec![1., 1., 3., 3.]);
    c.reset_row(1);
    assert_eq!(c.row_len(1), 0);
}
