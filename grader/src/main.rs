//! `cargo run -p grader`: grades a checkout's exercises with the hidden tests.

fn main() -> std::process::ExitCode {
    grader::cli::main()
}
