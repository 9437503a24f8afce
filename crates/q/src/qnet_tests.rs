//! Unit tests of `qnet` (kept in their own file beside it).

use super::*;

fn cfg(objective: Objective) -> QConfig {
    QConfig { dim: 4, hidden: 16, embedder: "test@0".into(), objective, gamma: 0.9, tau: 0.7, picture_side: 0 }
}

/// A toy problem: the action succeeds when it "matches" the state (same one-hot).
fn data(n: usize) -> Vec<Transition> {
    (0..n)
        .map(|i| {
            let (s, a) = (i % 4, (i / 4) % 4);
            let onehot = |k: usize| (0..4).map(|j| if j == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
            outcome(format!("t{s}"), format!("s{s}"), onehot(s), onehot(a), s == a)
        })
        .collect()
}

/// A one-step episode that took `action` in `state` and succeeded or not (log-prob −1).
fn outcome(task: String, state_key: String, state: Vec<f32>, action: Vec<f32>, ok: bool) -> Transition {
    Transition {
        task,
        state_key,
        state,
        action,
        logprob: -1.0,
        reward: ok as u8 as f32,
        done: true,
        mc_return: ok as u8 as f32,
        success: ok,
        next: None,
    }
}

#[test]
fn every_objective_learns_which_action_succeeds() {
    for objective in [Objective::Mc, Objective::Td, Objective::Iql] {
        let mut q = QNet::new(cfg(objective)).unwrap();
        let d = data(64);
        let report = q.fit(&d, &d, 300, 1e-2, 10, &mut |_, _| {}).unwrap();
        assert_eq!(report.val_auc, Some(1.0), "{objective:?}: {report:?}");
        assert_eq!(report.val_top1, Some(1.0), "{objective:?}");
        let scores = q.score(&d[0].state, &[(d[0].state.clone(), -1.0), (data(8)[5].action.clone(), -1.0)]).unwrap();
        assert!(scores[0] > scores[1], "{objective:?}: {scores:?}");
    }
}

#[test]
fn saved_q_functions_reload_and_refuse_other_embedders() {
    let mut q = QNet::new(cfg(Objective::Mc)).unwrap();
    q.trained_on = ["a warehouse had 1 box".to_string(), "two".to_string()].into();
    // Removed when the test ends, passed or failed.
    let dir = tempfile::Builder::new().prefix("kaizen-q-").tempdir().unwrap();
    let path = dir.path().join("q.safetensors");
    q.save(&path).unwrap();
    let back = QNet::load(&path, "test@0").unwrap();
    // The content of the tasks it was trained on travels with it (for held-out evaluation).
    assert_eq!(back.trained_on, ["two".to_string(), "a warehouse had 1 box".to_string()].into());
    let d = data(4);
    let acts = vec![(d[1].action.clone(), -0.5)];
    assert_eq!(q.score(&d[0].state, &acts).unwrap(), back.score(&d[0].state, &acts).unwrap());
    let err = QNet::load(&path, "other@1").err().unwrap().to_string();
    assert!(err.contains("trained on features of test@0"), "{err}");
    assert!("ppo".parse::<Objective>().unwrap_err().contains("mc, td, iql"));
}

/// A two-step chain, logged twice: s0 --a0--> s1, then a1 (reward 1, the episode succeeds) in
/// one episode and b1 (reward 0) in the other; s1's logged candidates are {a1, b1}. γ = 0.9,
/// τ = 0.8. Fixed points of Q(s0, a0), by hand:
/// - MC: the mean logged return from s0, (0.9·1 + 0.9·0) / 2 = 0.45;
/// - TD(0): 0 + γ · max(Q(s1, a1), Q(s1, b1)) = 0.9 · max(1, 0) = 0.9;
/// - IQL: V(s1) is the τ-expectile of {1, 0}, the v with τ(1 − v) = (1 − τ)v, so v = τ = 0.8,
///   and Q(s0, a0) = 0 + γ · 0.8 = 0.72.
fn chain() -> Vec<Transition> {
    let v = |x: [f32; 4]| x.to_vec();
    let (s0, s1) = (v([1.0, 0.0, 0.0, 0.0]), v([0.0, 1.0, 0.0, 0.0]));
    let (a0, a1, b1) = (v([0.0, 0.0, 1.0, 0.0]), v([0.0, 0.0, 0.0, 1.0]), v([0.0, 0.0, 1.0, 1.0]));
    let candidates = vec![(a1.clone(), -0.5), (b1.clone(), -0.5)];
    let step = |state: &[f32], action: &[f32], reward: f32, mc: f32, success: bool, next: bool, key: &str| Transition {
        task: "chain".into(),
        state_key: key.into(),
        state: state.to_vec(),
        action: action.to_vec(),
        logprob: -0.5,
        reward,
        done: !next,
        mc_return: mc,
        success,
        next: next.then(|| (s1.clone(), candidates.clone())),
    };
    vec![
        step(&s0, &a0, 0.0, 0.9, true, true, "s0"),
        step(&s1, &a1, 1.0, 1.0, true, false, "s1"),
        step(&s0, &a0, 0.0, 0.0, false, true, "s0"),
        step(&s1, &b1, 0.0, 0.0, false, false, "s1"),
    ]
}

#[test]
fn td_and_iql_reach_their_hand_computed_fixed_points_on_a_multi_step_chain() {
    let d = chain();
    for (objective, want) in [(Objective::Mc, 0.45), (Objective::Td, 0.9), (Objective::Iql, 0.72)] {
        let cfg = QConfig { hidden: 32, tau: 0.8, ..cfg(objective) };
        let mut q = QNet::new(cfg).unwrap();
        q.fit(&d, &[], 3000, 5e-3, 10, &mut |_, _| {}).unwrap();
        let got = q.score(&d[0].state, &[(d[0].action.clone(), d[0].logprob)]).unwrap()[0];
        assert!((got - want).abs() < 0.05, "{objective:?}: Q(s0, a0) = {got}, want {want}");
        let end = q.score(&d[1].state, &[(d[1].action.clone(), -0.5), (d[3].action.clone(), -0.5)]).unwrap();
        assert!((end[0] - 1.0).abs() < 0.05 && end[1].abs() < 0.05, "{objective:?}: Q(s1, ·) = {end:?}");
    }
}

/// Sets every variable of `net` whose name starts with `prefix` to `from`'s.
fn take_vars(net: &QNet, from: &QNet, prefix: &str) {
    let src = from.vars.data().lock().unwrap();
    for (name, var) in net.vars.data().lock().unwrap().iter() {
        if name.starts_with(prefix) {
            var.set(src[name].as_tensor()).unwrap();
        }
    }
}

#[test]
fn iql_regresses_v_on_the_target_q_and_q_on_the_online_v() {
    // Online and target networks differ. Changing only the target's value head must leave
    // both losses as they are (V(s′) in Q's target is the online one); changing only the
    // target's Q head must change V's loss (it regresses on the target's Q) and not Q's.
    let cfg = QConfig { tau: 0.8, ..cfg(Objective::Iql) };
    let online = QNet::seeded(cfg.clone(), 1).unwrap();
    let target = QNet::seeded(cfg.clone(), 2).unwrap();
    let other = QNet::seeded(cfg, 3).unwrap();
    let d = chain();
    let refs: Vec<&Transition> = d.iter().collect();
    let parts = |t: &QNet| {
        let (q, v) = online.losses(&refs, t).unwrap();
        (q.to_scalar::<f32>().unwrap(), v.unwrap().to_scalar::<f32>().unwrap())
    };
    let (q0, v0) = parts(&target);
    let new_v = target.copy().unwrap();
    take_vars(&new_v, &other, "v.");
    assert_eq!(parts(&new_v), (q0, v0), "the target's V reached a loss");
    let new_q = target.copy().unwrap();
    take_vars(&new_q, &other, "q.");
    let (q1, v1) = parts(&new_q);
    assert_eq!(q1, q0, "Q's target read the target network's Q");
    assert!((v1 - v0).abs() > 1e-6, "V's loss did not read the target network's Q: {v0} vs {v1}");
}

/// Every state reads the same text; only its picture (one pixel: red or blue) says which of two
/// actions succeeds — red: action 0, blue: action 1.
fn picture_data(picture_side: usize) -> Vec<Transition> {
    let text = vec![0.5, -0.5, 0.25, 0.0];
    let action = |k: usize| if k == 0 { vec![1.0, 0.0, 0.0, 0.0] } else { vec![0.0, 1.0, 0.0, 0.0] };
    (0..16)
        .map(|i| {
            let (red, a) = (i % 2 == 0, (i / 2) % 2);
            let ok = (a == 0) == red;
            let mut state = text.clone();
            if picture_side > 0 {
                state.extend(if red { [1.0, -1.0, -1.0] } else { [-1.0, -1.0, 1.0] });
            }
            outcome(format!("t{i}"), format!("{red}"), state, action(a), ok)
        })
        .collect()
}

#[test]
fn a_picture_reading_q_function_ranks_by_the_picture() {
    let with = QConfig { picture_side: 1, ..cfg(Objective::Mc) };
    assert_eq!(with.state_len(), 4 + 3);
    // The input row, by hand: [e_s, e_a, e_s ⊙ e_a, p_s, log-prob].
    let s = Tensor::new(&[[0.5f32, -0.5, 0.25, 0.0, 1.0, -1.0, -1.0]], &Device::Cpu).unwrap();
    let a = Tensor::new(&[[2.0f32, 4.0, 0.0, 1.0]], &Device::Cpu).unwrap();
    let lp = Tensor::new(&[-0.5f32], &Device::Cpu).unwrap();
    let row: Vec<f32> = QNet::input(&s, &a, &lp).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(row, [0.5, -0.5, 0.25, 0.0, 2.0, 4.0, 0.0, 1.0, 1.0, -2.0, 0.0, 0.0, 1.0, -1.0, -1.0, -0.5]);

    let mut q = QNet::new(with).unwrap();
    let d = picture_data(1);
    let report = q.fit(&d, &d, 300, 1e-2, 10, &mut |_, _| {}).unwrap();
    assert_eq!(report.val_top1, Some(1.0), "{report:?}");
    // (Without the picture the two states read alike, so no text-only Q-function can rank them:
    // picture_data(0) gives both actions the same inputs in both states.)
    // A state of the wrong length is an error, never a silent misread.
    assert!(q.score(&[0.0; 4], &[(vec![0.0; 4], 0.0)]).unwrap_err().to_string().contains("reads 7"));
}

#[test]
fn a_q_function_saved_before_pictures_loads_as_text_only_and_scores_as_before() {
    // The input row of a text-only Q-function, by hand: [e_s, e_a, e_s ⊙ e_a, log-prob].
    let s = Tensor::new(&[[1.0f32, 2.0, -1.0, 0.5]], &Device::Cpu).unwrap();
    let a = Tensor::new(&[[3.0f32, 0.0, 2.0, 2.0]], &Device::Cpu).unwrap();
    let lp = Tensor::new(&[-2.0f32], &Device::Cpu).unwrap();
    let row: Vec<f32> = QNet::input(&s, &a, &lp).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(row, [1.0, 2.0, -1.0, 0.5, 3.0, 0.0, 2.0, 2.0, 3.0, 0.0, -2.0, 1.0, -2.0]);

    // A file as kaizen wrote it before pictures: its config has no `picture_side`.
    let q = QNet::seeded(cfg(Objective::Iql), 3).unwrap();
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-q-old-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let (new, old) = (dir.join("new.safetensors"), dir.join("old.safetensors"));
    q.save(&new).unwrap();
    let bytes = std::fs::read(&new).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&meta["kaizen_q"]).unwrap();
    assert!(config.as_object_mut().unwrap().remove("picture_side").is_some());
    meta.insert("kaizen_q".into(), config.to_string());
    safetensors::serialize_to_file(tensors.tensors(), Some(meta), &old).unwrap();
    let back = QNet::load(&old, "test@0").unwrap();
    assert_eq!(back.cfg, q.cfg);
    assert_eq!(back.cfg.picture_side, 0);
    let d = data(4);
    let acts = vec![(d[1].action.clone(), -0.5), (d[2].action.clone(), -1.5)];
    assert_eq!(back.score(&d[0].state, &acts).unwrap(), q.score(&d[0].state, &acts).unwrap());
}
