//! Fuzzes the config parser and validator: any input must give a config or an error that
//! names a key path, never a panic. Run with `cargo +nightly fuzz run config` (or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run config` on stable) from this folder.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provision_config::{Checks, ConfigError, parse_with};

/// A project folder with the build folders configs usually name, made once.
fn project() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for folder in ["streamlit_app", "functions/text_counterfactuals", "endpoints/serverless_explanations"] {
            std::fs::create_dir_all(dir.path().join(folder)).expect("a folder");
            std::fs::write(dir.path().join(folder).join("Dockerfile"), "FROM scratch\n").expect("a Dockerfile");
        }
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for checks in [Checks::Full, Checks::ConfigOnly] {
        match parse_with(text, Path::new("fuzz.json"), project(), checks) {
            Ok(config) => {
                // A valid config always yields names within AWS's limits.
                assert!(config.stack_name().len() <= 40);
                assert!(config.app_domain().len() <= 64);
            }
            Err(ConfigError::Invalid { issues, .. }) => assert!(!issues.is_empty()),
            Err(_) => {}
        }
    }
});
