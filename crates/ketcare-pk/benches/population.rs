//! Population benchmark: Domino, 0.5 mg/kg over 40 min, 70 kg, 30% CV on V1, k10 and k12,
//! every minute for 6 h, N = 10,000 and 100,000, with percentile bands and per-subject Cmax/AUC.
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
        match ketcare_pk::fast::population_3cmt(&lib, &ketcare_pk::fast::BenchSpec::domino(n)) {
            Ok(r) => println!(
                "N = {n}: {:.1} ms, {:.0} subjects/s",
                r.seconds * 1e3,
                r.subjects_per_second
            ),
            Err(e) => eprintln!("{e}"),
        }
        return;
    }
    match ketcare_pk::fast::bench_report(&lib, &[10_000, 100_000]) {
        Ok(lines) => {
            for (_, l) in lines {
                println!("{l}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
