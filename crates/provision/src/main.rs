fn main() -> std::process::ExitCode {
    provision::main()
}
