//! LoRA's merge and config checks on hand-computed numbers.

use super::*;

#[test]
fn merge_adds_the_scaled_low_rank_product() {
    // W = [[1, 0], [0, 1]], A = [[1, 2]] (r = 1), B = [[3], [−1]], s = 0.5:
    // B A = [[3, 6], [−1, −2]] → W' = [[2.5, 3], [−0.5, 0]].
    let dev = Device::Cpu;
    let w = Tensor::new(&[[1f32, 0.], [0., 1.]], &dev).unwrap();
    let a = Tensor::new(&[[1f32, 2.]], &dev).unwrap();
    let b = Tensor::new(&[[3f32], [-1.]], &dev).unwrap();
    let merged = merge(&w, &a, &b, 0.5).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(merged, vec![vec![2.5, 3.0], vec![-0.5, 0.0]]);
    // The merged weight computes the adapted projection: x W'ᵀ = x Wᵀ + s (x Aᵀ) Bᵀ.
    let x = Tensor::new(&[[2f32, -1.]], &dev).unwrap();
    let adapted = (x.matmul(&w.t().unwrap()).unwrap()
        + (x.matmul(&a.t().unwrap()).unwrap().matmul(&b.t().unwrap()).unwrap() * 0.5).unwrap())
    .unwrap();
    let served = x.matmul(&merge(&w, &a, &b, 0.5).unwrap().t().unwrap()).unwrap();
    assert_eq!(adapted.to_vec2::<f32>().unwrap(), served.to_vec2::<f32>().unwrap());
    // [2, −1] W'ᵀ = [2·2.5 − 3, 2·(−0.5) − 0].
    assert_eq!(served.to_vec2::<f32>().unwrap(), vec![vec![2.0, -1.0]]);
}

#[test]
fn configs_are_checked_field_by_field() {
    let ok = LoraConfig { rank: 8, alpha: 16.0, targets: vec!["attn_q".into(), "attn_v".into()] };
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.scale(), 2.0);
    assert!(ok.adapts_tensor("blk.12.attn_q") && !ok.adapts_tensor("blk.12.attn_k") && !ok.adapts_tensor("attn_q"));
    let err = LoraConfig { targets: vec!["attn_qq".into()], ..ok.clone() }.validate().unwrap_err();
    assert!(err.contains("lora.targets") && err.contains("attn_qq") && err.contains("ffn_down"), "{err}");
    assert!(LoraConfig { rank: 0, ..ok.clone() }.validate().unwrap_err().contains("lora.rank"));
    assert!(LoraConfig { alpha: f32::NAN, ..ok.clone() }.validate().unwrap_err().contains("lora.alpha"));
    assert!(LoraConfig { targets: vec![], ..ok }.validate().unwrap_err().contains("lora.targets"));
}

#[test]
fn adapters_start_at_zero_update_and_are_seeded() {
    let dev = Device::Cpu;
    let base = HashMap::from([(
        "blk.0.attn_q.weight".to_string(),
        Tensor::zeros((6, 4), candle_core::DType::F32, &dev).unwrap(),
    )]);
    let cfg = LoraConfig { rank: 2, alpha: 4.0, targets: vec!["attn_q".into()] };
    let get = |vars: &VarMap, n: &str| vars.data().lock().unwrap()[n].as_tensor().clone();
    let (x, y) = (init_adapters(&cfg, &base, 1, &dev, 7).unwrap(), init_adapters(&cfg, &base, 1, &dev, 7).unwrap());
    assert_eq!(get(&x, "blk.0.attn_q.lora_a").dims(), &[2, 4]);
    assert_eq!(get(&x, "blk.0.attn_q.lora_b").dims(), &[6, 2]);
    assert_eq!(get(&x, "blk.0.attn_q.lora_b").abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let diff = (get(&x, "blk.0.attn_q.lora_a") - get(&y, "blk.0.attn_q.lora_a")).unwrap();
    assert_eq!(diff.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    // Layers without the weight are an error, not a silent skip.
    assert!(init_adapters(&cfg, &base, 2, &dev, 7).is_err());
}
