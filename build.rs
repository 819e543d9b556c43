//! Links the function (and the benchmark's floor, so the two stay comparable) as a
//! position-dependent executable on Linux with glibc.
//!
//! Why: a position-independent executable makes the dynamic loader apply every
//! relocation of the binary before `main` runs, at every cold start. The SDK crates
//! bring about 35,000 of them: 1.07 M cycles in the loader against 0.13 M without
//! (`LD_DEBUG=statistics target/release/teardown --version`), and a first poll at
//! 1.48× the runtime's floor against 1.21× (`scripts/bench`). What it gives up is
//! the randomised load address of the executable itself; the stack, heap and shared
//! libraries stay randomised. Go builds Linux binaries this way by default.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // glibc targets only: a musl target is linked static-pie, and the two must not be crossed.
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if gnu_linux {
        println!("cargo::rustc-link-arg-bins=-no-pie");
        println!("cargo::rustc-link-arg-examples=-no-pie");
    }
}
