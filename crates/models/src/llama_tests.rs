//! Unit tests of `llama` (kept in their own file beside it).

use super::*;

fn kv(vals: &[f32]) -> Tensor {
    // [b=1, heads=1, s, d=2]
    Tensor::from_vec(vals.to_vec(), (1, 1, vals.len() / 2, 2), &Device::Cpu).unwrap()
}

#[test]
fn cache_appends_in_place_grows_and_clones_deeply() {
    let mut c = KvCache { layers: vec![None], len: 0, capacity_hint: 2 };
    let (k, _) = c.append(0, &kv(&[1., 2., 3., 4.]), &kv(&[0.; 4])).unwrap();
    c.len += 2;
    assert_eq!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1., 2., 3., 4.]);
    let snapshot = c.clone();
    // Past capacity: the buffer grows and keeps what it had.
    let (k, _) = c.append(0, &kv(&[5., 6.]), &kv(&[0.; 2])).unwrap();
    c.len += 1;
    assert_eq!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1., 2., 3., 4., 5., 6.]);
    // Writing into the clone does not touch the original.
    let mut fork = snapshot;
    let (k, _) = fork.append(0, &kv(&[9., 9.]), &kv(&[0.; 2])).unwrap();
    assert_eq!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1., 2., 3., 4., 9., 9.]);
    let (k, _) = c.append(0, &kv(&[7., 8.]), &kv(&[0.; 2])).unwrap();
    assert_eq!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1., 2., 3., 4., 5., 6., 7., 8.]);
    let two = c.repeat_batch(2).unwrap().select_rows(&[1]).unwrap();
    assert_eq!(two.layers[0].as_ref().unwrap().0.dims4().unwrap().0, 1);
}
