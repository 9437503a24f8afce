//! Unit tests of `qnet` (kept in their own file beside it).

use super::*;

fn cfg(objective: Objective) -> QConfig {
    QConfig { dim: 4, hidden: 16, embedder: "test@0".into(), objective, gamma: 0.9, tau: 0.7 }
}

/// A toy problem: the action succeeds when it "matches" the state (same one-hot).
fn data(n: usize) -> Vec<Transition> {
    (0..n)
        .map(|i| {
            let (s, a) = (i % 4, (i / 4) % 4);
            let onehot = |k: usize| (0..4).map(|j| if j == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
            let ok = s == a;
            Transition {
                task: format!("t{s}"),
                state_key: format!("s{s}"),
                state: onehot(s),
                action: onehot(a),
                logprob: -1.0,
                reward: ok as u8 as f32,
                done: true,
                mc_return: ok as u8 as f32,
                success: ok,
                next: None,
            }
        })
        .collect()
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
    let q = QNet::new(cfg(Objective::Mc)).unwrap();
    let path = std::env::temp_dir().join(format!("kaizen-q-{}.safetensors", std::process::id()));
    q.save(&path).unwrap();
    let back = QNet::load(&path, "test@0").unwrap();
    let d = data(4);
    let acts = vec![(d[1].action.clone(), -0.5)];
    assert_eq!(q.score(&d[0].state, &acts).unwrap(), back.score(&d[0].state, &acts).unwrap());
    let err = QNet::load(&path, "other@1").err().unwrap().to_string();
    assert!(err.contains("trained on features of test@0"), "{err}");
    assert!("ppo".parse::<Objective>().unwrap_err().contains("mc, td, iql"));
}
