//! The two feature sources of a Q-function with the installed models: MiniLM and the policy's
//! own pooled hidden states — unit vectors, cached by content, never mixed.

use kaizen_q::features::{FeatureCache, Features};

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn policy_features_are_smollm2s_pooled_hidden_states() {
    let policy = Features::open("smollm2").unwrap();
    let minilm = Features::open("minilm").unwrap();
    assert_eq!((policy.dim(), minilm.dim()), (576, 384));
    assert_ne!(policy.identity(), minilm.identity());
    let texts = ["What is 17 * 23?", "What is 17 * 24?", "Click the Submit button."];
    let v = policy.encode(&texts).unwrap();
    assert!(v.iter().all(|x| (norm(x) - 1.0).abs() < 1e-4 && x.iter().all(|f| f.is_finite())));
    // Two arithmetic questions read closer to each other than to a web instruction.
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]), "{} vs {}", cos(&v[0], &v[1]), cos(&v[0], &v[2]));
    // The same text gives the same vector (batched or alone).
    assert_eq!(policy.encode(&texts[..1]).unwrap()[0], v[0]);

    // Through the cache: the second time every vector is read back, bit for bit.
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-q-features-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let cache = FeatureCache::new(policy.clone(), &dir);
    let (first, hits) = cache.embed(&texts).unwrap();
    let (again, hits_again) = cache.embed(&texts).unwrap();
    assert_eq!((hits, hits_again), (0, 3));
    assert_eq!(first, again);
    // A Q-function's identity reopens the same features; an unknown one is refused.
    assert_eq!(Features::for_identity(&policy.identity()).unwrap().identity(), policy.identity());
    let err = Features::for_identity("other-model@0123").err().unwrap().to_string();
    assert!(err.contains("retrain"), "{err}");
    assert!(Features::open("bert").err().unwrap().to_string().contains("allowed: minilm, smollm2"));
}
