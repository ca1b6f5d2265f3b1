//! `eucora`: the operator CLI over the EUCORA HTTP API (see `eucora_local::cli`).

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = eucora_local::cli::main_with(&args, &mut std::io::stdout()).await;
    std::process::exit(code);
}
