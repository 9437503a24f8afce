//! The real all-MiniLM-L6-v2 installed by `scripts/setup.sh`.

use kaizen_models::{cosine, Embedder};

#[test]
fn reproduces_published_sentence_transformers_cosines() {
    // The sbert.net quick-start example; sentence-transformers prints 0.6660, 0.1046, 0.1411
    // for these pairs.
    let e = Embedder::load_installed().unwrap();
    let s = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
    let v = e.embed(&s, 8).unwrap();
    assert_eq!(v[0].len(), 384);
    let c01 = cosine(&v[0], &v[1]);
    let c02 = cosine(&v[0], &v[2]);
    let c12 = cosine(&v[1], &v[2]);
    println!("{c01:.4} {c02:.4} {c12:.4}");
    assert!((c01 - 0.6660).abs() < 5e-4 && (c02 - 0.1046).abs() < 5e-4 && (c12 - 0.1411).abs() < 5e-4);
}

#[test]
fn paraphrases_score_higher_than_unrelated_pairs() {
    let e = Embedder::load_installed().unwrap();
    let pairs = [
        ("How do I reset my password?", "I forgot my password, how can I change it?", "The recipe needs two eggs."),
        ("A man is playing a guitar.", "Someone strums a guitar.", "The stock market fell sharply today."),
        ("What is 17 times 23?", "Compute the product of 17 and 23.", "Cats sleep most of the day."),
    ];
    for (a, para, unrelated) in pairs {
        let v = e.embed(&[a, para, unrelated], 3).unwrap();
        let (p, u) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
        assert!(p > u + 0.3, "{a:?}: paraphrase {p:.3} vs unrelated {u:.3}");
    }
}

#[test]
fn results_do_not_depend_on_batch_size() {
    let e = Embedder::load_installed().unwrap();
    let texts = [
        "short",
        "a somewhat longer sentence with more tokens in it",
        "tool calls: <tool_call>{\"name\": \"python\"}</tool_call>",
        "ünïcödé and digits 12345",
        "",
    ];
    let one = e.embed(&texts, 1).unwrap();
    for bs in [2, 3, 5] {
        let many = e.embed(&texts, bs).unwrap();
        for (a, b) in one.iter().zip(&many) {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "batch size {bs}: max |Δ| = {worst:e}");
            let n: f32 = b.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }
}
