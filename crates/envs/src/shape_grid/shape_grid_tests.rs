use super::agents::shape_of;
use super::*;
use image::Rgb;

fn open(spec: &str) -> ShapeGrid {
    ShapeGrid::open(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// Pixel (x, y) of easy-VQA's own file for picture `id`, decoded here independently.
fn file_pixel(split: &str, id: u64, x: u32, y: u32) -> [u8; 3] {
    let bytes = std::fs::read(data_root().join(split).join("images").join(format!("{id}.png"))).unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8().get_pixel(x, y).0
}

#[test]
fn the_two_splits_share_no_picture_and_no_task() {
    let (train, test) = (open("shape-grid"), open("shape-grid:test"));
    // easy-VQA's train split has 4,000 pictures, test 1,000; these have a shape answer.
    assert_eq!((train.cells.len(), test.cells.len()), (3107, 763));
    let train_pictures: std::collections::HashSet<String> = train.picture_hashes().into_iter().collect();
    assert_eq!(train_pictures.len(), 3107, "train pictures repeat");
    assert!(test.picture_hashes().iter().all(|h| !train_pictures.contains(h)));
    // By content: the same question about two scenes is two tasks; no test scene is a train one.
    let seen: std::collections::HashSet<String> = train.tasks(1, 300).iter().map(Task::content_key).collect();
    assert_eq!(seen.len(), 300);
    let held = kaizen_core::env::held_out_tasks(&test, 2, 100, |k| seen.contains(k), "tasks").unwrap();
    assert_eq!(held.len(), 100);
    assert!(held.iter().all(|t| t.meta["split"] == "test" && !seen.contains(&t.content_key())));
}

#[test]
fn a_task_shows_its_scene_shrunk_and_its_session_crops_the_scene_at_full_size() {
    let env = open("shape-grid");
    let t = &env.tasks(7, 1)[0];
    assert_eq!(env.tasks(7, 1)[0], *t, "seeded");
    let ids = scene_ids(t);
    assert_eq!(ids.len(), 9);
    let view = kaizen_tools::image::decode_url(&t.images[0]).unwrap();
    assert_eq!(view.dimensions(), (24, 24));
    // View pixel (4, 1) is the mean of scene pixels x 32..40, y 8..16: all in cell 0 (top left).
    let mut sum = [0u32; 3];
    for y in 8..16 {
        for x in 32..40 {
            let p = file_pixel("train", ids[0], x, y);
            (0..3).for_each(|c| sum[c] += p[c] as u32);
        }
    }
    assert_eq!(view.get_pixel(4, 1).0, sum.map(|s| ((s + 32) / 64) as u8));
    // The session's crop of the asked cell is easy-VQA's picture, pixel for pixel.
    let (row, col) = (t.meta["row"].as_u64().unwrap() as u32, t.meta["col"].as_u64().unwrap() as u32);
    let id = ids[((row - 1) * 3 + col - 1) as usize];
    let mut s = env.open_session(t).unwrap().unwrap();
    assert_eq!(
        s.tools().iter().filter_map(|x| x.name().map(String::from)).collect::<Vec<_>>(),
        ["crop", "zoom", "rotate"]
    );
    let bx = [(col - 1) * 64, (row - 1) * 64, col * 64, row * 64];
    let o = s.act(&ToolCall { id: String::new(), name: "crop".into(), arguments: serde_json::json!({"box": bx}) });
    assert!(o.ok, "{}", o.content);
    let crop = kaizen_tools::image::decode_url(&o.images[0]).unwrap();
    for (x, y) in [(0, 0), (31, 17), (63, 63), (10, 50)] {
        assert_eq!(crop.get_pixel(x, y).0, file_pixel("train", id, x, y), "({x}, {y})");
    }
    // The answer is easy-VQA's shape for that picture, in any case.
    assert!(SHAPES.contains(&t.answer.as_str()));
    assert!(t.checker.check(&t.answer.to_uppercase(), &t.answer) && !t.checker.check("hexagon", &t.answer));
    let o = s.act(&ToolCall {
        id: String::new(),
        name: "crop".into(),
        arguments: serde_json::json!({"box": [0, 0, 193, 9]}),
    });
    assert!(!o.ok && o.content.contains("outside the 192×192"), "{}", o.content);
}

#[test]
fn the_pixel_rule_names_drawn_shapes() {
    let bg = Rgb([240, 235, 230]);
    let ink = Rgb([20, 20, 200]);
    let draw = |inside: &dyn Fn(f64, f64) -> bool| {
        RgbImage::from_fn(64, 64, |x, y| if inside(x as f64 + 0.5, y as f64 + 0.5) { ink } else { bg })
    };
    assert_eq!(shape_of(&draw(&|x, y| (10.0..50.0).contains(&x) && (20.0..40.0).contains(&y))), "rectangle");
    assert_eq!(shape_of(&draw(&|x, y| (x - 32.0).powi(2) + (y - 30.0).powi(2) < 18.0f64.powi(2))), "circle");
    // Apex (32, 8), base y = 56 from x 8 to 56.
    assert_eq!(shape_of(&draw(&|x, y| y < 56.0 && (x - 32.0).abs() < (y - 8.0) / 2.0)), "triangle");
}

#[test]
fn the_reference_agents_refuse_odd_questions_and_read_the_task_after_worked_examples() {
    use kaizen_core::{ChatRequest, Message, Policy};
    let env = open("shape-grid:test");
    let tasks = env.tasks(3, 2);
    let ask = |m: Vec<Message>| ChatRequest { messages: m, ..Default::default() };
    let turn = |t: &Task| Message { images: t.images.clone(), ..Message::user(t.prompt.clone()) };
    // Row 0, row 4, a picture too small for a grid: errors, never a panic.
    for prompt in [question(0, 1), question(4, 2)] {
        let m = Message { images: tasks[0].images.clone(), ..Message::user(prompt) };
        assert!(agents::Glance.chat(&ask(vec![m.clone()])).is_err());
        assert!(agents::Zoomer.chat(&ask(vec![m])).is_err());
    }
    let tiny = kaizen_tools::image::png_url(&RgbImage::new(2, 2)).unwrap();
    let m = Message { images: vec![tiny], ..Message::user(question(1, 1)) };
    assert!(agents::Glance.chat(&ask(vec![m])).is_err());
    // After a worked example (another task, its crop and answer), Zoomer asks for the crop of
    // the task's own cell, not the example's.
    let (row, col) = (tasks[1].meta["row"].as_u64().unwrap(), tasks[1].meta["col"].as_u64().unwrap());
    let example = vec![
        turn(&tasks[0]),
        Message::assistant("<tool_call>{\"name\": \"crop\", \"arguments\": {\"box\": [0, 0, 64, 64]}}</tool_call>"),
        Message { images: tasks[0].images.clone(), ..Message::new(kaizen_core::Role::Tool, "crop".to_string()) },
        Message::assistant("\\boxed{circle}"),
        turn(&tasks[1]),
    ];
    let text = agents::Zoomer.chat(&ask(example)).unwrap()[0].text.clone();
    let bx = format!("[{},{},{},{}]", (col - 1) * 64, (row - 1) * 64, col * 64, row * 64);
    assert!(text.contains(&bx), "{text} should crop {bx}");
}
