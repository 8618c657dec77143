use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    mitra::cli::run().await
}
