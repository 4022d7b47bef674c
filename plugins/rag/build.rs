//! Compiles `faiss/shim.cpp`, the plugin's C ABI over Faiss, and links it with
//! Debian's static `libfaiss.a` (package libfaiss-dev, installed by
//! scripts/setup.sh) and what that library needs: OpenMP, BLAS and LAPACK.
//!
//! Debian's Faiss has no C API of its own and no crate wraps a system Faiss
//! without building Faiss from source (minutes of C++ on two cores), so a shim
//! of a hundred lines against the packaged library is the cheapest real Faiss.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=faiss/shim.cpp");
    println!("cargo:rerun-if-env-changed=FAISS_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=FAISS_LIB_DIR");
    let include = std::env::var("FAISS_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());
    // Debian's multiarch directory: x86_64-unknown-linux-gnu → x86_64-linux-gnu.
    let target = std::env::var("TARGET").unwrap_or_default();
    let arch = target.split('-').next().unwrap_or("x86_64");
    let lib_dir =
        std::env::var("FAISS_LIB_DIR").unwrap_or_else(|_| format!("/usr/lib/{arch}-linux-gnu"));
    if !Path::new(&include).join("faiss/index_io.h").exists() {
        // One clear line instead of a page of C++ compiler errors.
        panic!(
            "agentflow-rag needs Faiss: {}/faiss/index_io.h not found. Install it with \
             scripts/setup.sh (Debian package libfaiss-dev), or set FAISS_INCLUDE_DIR and \
             FAISS_LIB_DIR to a Faiss build",
            include
        );
    }
    cc::Build::new()
        .cpp(true)
        .file("faiss/shim.cpp")
        .include(&include)
        .flag("-std=c++17")
        .flag("-fopenmp")
        .warnings(false)
        .compile("agentflow_faiss_shim");
    println!("cargo:rustc-link-search=native={lib_dir}");
    println!("cargo:rustc-link-lib=static=faiss");
    println!("cargo:rustc-link-lib=dylib=gomp");
    println!("cargo:rustc-link-lib=dylib=lapack");
    println!("cargo:rustc-link-lib=dylib=blas");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
