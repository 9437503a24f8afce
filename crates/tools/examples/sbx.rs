fn main() {
    let s = kaizen_tools::Sandbox::new(Default::default());
    for code in
        ["print(1)", "print(sum(range(10)))", "import os; print(os.getuid(), os.listdir('/'))", "while True: pass"]
    {
        let r = s.run(code);
        println!(
            "{code:?} -> {:?} {:?} exit={:?} to={} err={:?} {:?}",
            r.stdout,
            r.stderr.chars().take(200).collect::<String>(),
            r.exit_code,
            r.timed_out,
            r.sandbox_error,
            r.elapsed
        );
    }
    let t = std::time::Instant::now();
    for _ in 0..20 {
        s.run("print(1)");
    }
    println!("warm avg {:?}", t.elapsed() / 20);
}
