use super::*;
use kaizen_core::{ChatRequest, Message};

fn open(spec: &str) -> ShapeCell {
    ShapeCell::open(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// easy-VQA's own shape answer for picture `id` of `split`, read here from its questions file.
fn file_shape(split: &str, id: u64) -> String {
    let text = std::fs::read_to_string(super::super::data_root().join(split).join("questions.json")).unwrap();
    let rows: Vec<(String, String, u64)> = serde_json::from_str(&text).unwrap();
    rows.into_iter()
        .find(|(_, a, i)| *i == id && ["circle", "rectangle", "triangle"].contains(&a.as_str()))
        .map(|(_, a, _)| a)
        .unwrap()
}

#[test]
fn a_task_shows_one_easy_vqa_picture_at_full_size_and_asks_its_shape() {
    let env = open("shape-cell");
    let tasks = env.tasks(3, 40);
    assert_eq!(env.tasks(3, 40), tasks, "seeded");
    let mut shapes = std::collections::HashSet::new();
    for t in &tasks {
        let id = t.meta["cell"].as_u64().unwrap();
        let shown = kaizen_tools::image::decode_url(&t.images[0]).unwrap();
        let bytes = std::fs::read(super::super::data_root().join("train/images").join(format!("{id}.png"))).unwrap();
        let file = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(shown.dimensions(), (64, 64));
        assert!(shown.pixels().zip(file.pixels()).all(|(a, b)| a == b), "picture {id} differs from its file");
        assert_eq!(t.answer, file_shape("train", id));
        assert_eq!(t.prompt, CELL_QUESTION);
        shapes.insert(t.answer.clone());
        // The demonstration is solved by the task's own checker; another shape is not.
        let demo = env.demonstration(t).unwrap();
        assert_eq!(demo, [format!("The shape is a {0}. \\boxed{{{0}}}", t.answer)]);
        let said = |text: &str| kaizen_core::tool_call::final_answer(text).unwrap_or_default();
        assert!(t.checker.check(&said(&demo[0]), &t.answer));
        let other = ["circle", "rectangle", "triangle"].into_iter().find(|s| *s != t.answer).unwrap();
        assert!(!t.checker.check(&said(&format!("\\boxed{{{other}}}")), &t.answer));
    }
    assert_eq!(shapes.len(), 3, "40 draws show all three shapes");
}

#[test]
fn the_splits_share_no_picture_with_each_other_or_with_shape_grid_test() {
    let (train, test) = (open("shape-cell"), open("shape-cell:test"));
    let train_pictures: std::collections::HashSet<String> = train.picture_hashes().into_iter().collect();
    assert_eq!(train_pictures.len(), 3107);
    assert!(test.picture_hashes().iter().all(|h| !train_pictures.contains(h)));
    // shape-grid:test draws on the same test pictures: none of them trains here.
    let grid_test = super::super::ShapeGrid::open("shape-grid:test").unwrap();
    assert!(grid_test.picture_hashes().iter().all(|h| !train_pictures.contains(h)));
    assert!(matches!(ShapeCell::open("shape-cell:dev"), Err(e) if e.contains("shape-cell:test")));
}

#[test]
fn the_reader_names_the_shown_shape_and_refuses_a_task_without_a_picture() {
    let env = open("shape-cell:test");
    let tasks = env.tasks(5, 100);
    let reader = env.reference_agent().unwrap();
    let right = tasks
        .iter()
        .filter(|t| {
            let req = ChatRequest {
                messages: vec![Message { images: t.images.clone(), ..Message::user(t.prompt.clone()) }],
                ..Default::default()
            };
            let text = &reader.chat(&req).unwrap()[0].text;
            t.checker.check(&kaizen_core::tool_call::final_answer(text).unwrap_or_default(), &t.answer)
        })
        .count();
    // The pixel rule reads 298 of 300 cropped cells on shape-grid:test (BENCHMARKS.md).
    assert!(right >= 95, "{right} of 100");
    let bare = ChatRequest { messages: vec![Message::user(CELL_QUESTION)], ..Default::default() };
    assert!(matches!(reader.chat(&bare), Err(e) if e.to_string().contains("no picture")));
}
