//! The check that a binary can run in an empty image: the ELF program interpreter it names, if any.

use anyhow::{Context, Result, bail};

/// The program interpreter an ELF executable names (its `PT_INTERP` segment), if any. Dynamically
/// linked executables name one (`/lib64/ld-linux-x86-64.so.2`); static ones, static-pie included,
/// do not, and so run in an empty image. Reads 64-bit ELF of either byte order.
pub fn elf_interpreter(elf: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if elf.len() < 0x40 {
        bail!("truncated ELF file");
    }
    if elf[4] != 2 {
        bail!("not a 64-bit ELF file");
    }
    let little = match elf[5] {
        1 => true,
        2 => false,
        other => bail!("unknown ELF byte order {other}"),
    };
    let bytes = |at: usize, len: usize| -> Result<&[u8]> {
        at.checked_add(len)
            .and_then(|end| elf.get(at..end))
            .context("truncated ELF file")
    };
    let uint = |at: usize, len: usize| -> Result<u64> {
        let raw = bytes(at, len)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { raw[len - 1 - i] } else { raw[i] };
            value = value << 8 | u64::from(byte);
        }
        Ok(value)
    };
    let size = |value: u64| usize::try_from(value).context("ELF offset too large");
    // ELF64 header: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    let phoff = size(uint(0x20, 8)?)?;
    let phentsize = size(uint(0x36, 2)?)?;
    let phnum = size(uint(0x38, 2)?)?;
    if phentsize < 0x28 && phnum > 0 {
        bail!("ELF program headers of {phentsize} bytes are too small");
    }
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        if uint(header, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        // Elf64_Phdr: p_offset at 0x08, p_filesz at 0x20.
        let offset = size(uint(header + 0x08, 8)?)?;
        let len = size(uint(header + 0x20, 8)?)?;
        let path = bytes(offset, len)?;
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}
