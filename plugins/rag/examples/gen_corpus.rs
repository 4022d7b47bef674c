//! Writes a deterministic synthetic corpus for benchmarks:
//! `cargo run -p agentflow-rag --example gen_corpus -- N out.jsonl`.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(path)) = (
        args.first().and_then(|n| n.parse::<u64>().ok()),
        args.get(1),
    ) else {
        eprintln!(
            "usage: gen_corpus N OUT.jsonl   (N passages {{id, title, contents}}, one per line)"
        );
        return ExitCode::from(2);
    };
    let written = File::create(path).and_then(|file| {
        let mut out = BufWriter::new(file);
        agentflow_rag::synth::write_corpus(n, &mut out)?;
        std::io::Write::flush(&mut out)
    });
    match written {
        Ok(()) => {
            eprintln!("wrote {n} passages to {path}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_corpus: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
