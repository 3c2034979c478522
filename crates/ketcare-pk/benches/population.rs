//! Population benchmark of the public path (`ketcare_pk::simulate`, what the CLI, API and page
//! call): Domino, 0.5 mg/kg over 40 min, 70 kg, 30% CV on V1,
//! every minute for 6 h, N = 10,000 and 100,000, with percentile bands and per-subject Cmax/Tmax/AUC/time above.
//! Run with `cargo bench -p ketcare-pk` (release). `PK_BENCH_ONCE=N` runs one population of N
//! subjects without repetitions (for instruction counting).

fn main() {
    let lib = match ketcare_pk::Library::builtin() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if let Some(n) = std::env::var("PK_BENCH_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        match ketcare_pk::fast::public_run(&lib, n) {
            Ok((secs, _)) => println!(
                "N = {n}: {:.1} ms, {:.0} subjects/s",
                secs * 1e3,
                n as f64 / secs
            ),
            Err(e) => eprintln!("{e}"),
        }
        return;
    }
    let cpu0 = cpu_seconds();
    match ketcare_pk::fast::bench_report(&lib, &[10_000, 100_000]) {
        Ok(lines) => {
            for (_, l) in lines {
                println!("{l}");
            }
            // On a shared machine the wall clock understates the engine: also report the CPU time
            // the whole run (warm-up and 3 × each size) consumed, per subject.
            if let (Some(a), Some(b)) = (cpu0, cpu_seconds()) {
                let subjects = 2_000.0 + 3.0 * (10_000.0 + 100_000.0);
                println!(
                    "CPU time for {subjects} subjects: {:.2} s, i.e. {:.0} subjects per CPU-second ({:.0} subjects/s on 2 unshared cores)",
                    b - a,
                    subjects / (b - a),
                    2.0 * subjects / (b - a)
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 ticks per second).
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
