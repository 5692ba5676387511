fn main() -> std::process::ExitCode {
    shardcar::cli::main()
}
