//! Scans a layer file and prints what was found (a manual check).
fn main() {
    let path = std::env::args().nth(1).expect("usage: scan_file LAYER");
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let t = std::time::Instant::now();
    let f = freshen_sbom::scan_layer(&path, file, &freshen_sbom::Limits::default()).unwrap();
    let inv = freshen_sbom::merge(&[(path, f.clone())]);
    eprintln!(
        "{} entries, {} bytes, {} files of interest, {} packages, {} warnings in {:?}",
        f.entries,
        f.bytes,
        f.files.len(),
        inv.packages.len(),
        f.warnings.len(),
        t.elapsed()
    );
}
