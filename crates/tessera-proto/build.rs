//! Compiles the gRPC contract with protox (pure Rust: no system protoc needed) and writes the
//! descriptor set that server reflection serves.
use std::{env, fs, io, path::PathBuf};

use prost::Message;

fn main() -> io::Result<()> {
    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR")
            .ok_or_else(|| io::Error::other("CARGO_MANIFEST_DIR unset"))?,
    );
    // The contract lives at the top of the workspace, beside the migrations: it is shared with
    // programs that are not written in Rust.
    let include = manifest_dir.join("../../proto");
    let proto = include.join("tessera/auth/v1/auth.proto");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("tessera").display()
    );
    let fds = protox::compile([&proto], [&include]).map_err(io::Error::other)?;
    let out_dir =
        PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR unset"))?);
    fs::write(out_dir.join("tessera_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // A request that does not decode is the caller's fault: INVALID_ARGUMENT with the
        // ErrorInfo every Tessera error carries, not tonic's bare INTERNAL.
        .codec_path("crate::codec::ReasonedCodec")
        .compile_fds(fds)
}
