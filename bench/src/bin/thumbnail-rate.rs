//! `thumbnail-rate FILE ROUNDS SIZES [OUTDIR]`: the worker's own thumbnail code (`worker::
//! thumbnails::render`: decode (DCT-scaled for a JPEG), three Lanczos3 resizes, encode) on FILE,
//! ROUNDS times; prints the median milliseconds per image as `median_ms=…` and the variants'
//! sizes as `sizes=NAME:WxH,…`, and writes the variants to OUTDIR as `NAME.jpg`.
//! `bench/thumbnail.sh` runs Pillow on the same file and compares the lines and the pictures.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (file, rounds, sizes, outdir) = match args.as_slice() {
        [_, file, rounds, sizes] => (file, rounds, sizes, None),
        [_, file, rounds, sizes, outdir] => (file, rounds, sizes, Some(outdir)),
        _ => anyhow::bail!("usage: thumbnail-rate FILE ROUNDS SIZES [OUTDIR]"),
    };
    let original = std::fs::read(file)?;
    let sizes = worker::settings::parse_sizes(sizes).map_err(anyhow::Error::msg)?;
    let rounds: usize = rounds.parse()?;
    anyhow::ensure!(rounds > 0, "ROUNDS must be at least 1");
    let mut times = Vec::with_capacity(rounds);
    let mut dimensions = String::new();
    let mut last = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let out = worker::thumbnails::render(&original, &sizes).map_err(anyhow::Error::msg)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        dimensions = out
            .iter()
            .map(|r| format!("{}:{}x{}", r.size, r.width, r.height))
            .collect::<Vec<_>>()
            .join(",");
        last = std::hint::black_box(out);
    }
    if let Some(outdir) = outdir {
        for variant in &last {
            std::fs::write(format!("{outdir}/{}.jpg", variant.size), &variant.bytes)?;
        }
    }
    times.sort_by(f64::total_cmp);
    println!("median_ms={:.1}", times[times.len() / 2]);
    println!("sizes={dimensions}");
    Ok(())
}
