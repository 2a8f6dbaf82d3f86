//! `npm run codegen` (`cargo run -q -p kcpwatch-codegen`): writes the files derived from the
//! event catalogue. With `--check`, writes nothing and fails naming each file that differs.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = match kcpwatch_codegen::generate(&root) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for file in &files {
        let path = root.join(file.path);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == file.contents {
            continue;
        }
        if check {
            eprintln!(
                "codegen: {} differs from what `npm run codegen` generates; run it and commit the result",
                file.path
            );
            stale += 1;
        } else if let Err(e) = std::fs::write(&path, &file.contents) {
            eprintln!("codegen: cannot write {}: {e}", file.path);
            return ExitCode::FAILURE;
        } else {
            println!("codegen: wrote {}", file.path);
        }
    }
    if stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
