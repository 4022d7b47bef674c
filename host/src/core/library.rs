//! Plugin library files: finding them, hashing them, and loading a
//! content-addressed copy (a loaded file must never be overwritten in place).

use std::path::{Path, PathBuf};

use plugin_loader::LoadedPlugin;
use sha2::{Digest, Sha256};

/// A plugin library file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryFile {
    /// The file in the plugin directory (or named in the config).
    pub path: PathBuf,
    pub size: u64,
    /// Hex SHA-256 of the contents.
    pub hash: String,
}

impl LibraryFile {
    /// Reads and hashes a file.
    pub fn read(path: &Path) -> std::io::Result<(Self, Vec<u8>)> {
        let bytes = std::fs::read(path)?;
        let hash = hex(&Sha256::digest(&bytes));
        Ok((
            Self {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
                hash,
            },
            bytes,
        ))
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A name for the plugin before it is loaded: `libagentflow_bash.so` -> `bash`.
    pub fn provisional_name(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = stem.strip_prefix("lib").unwrap_or(&stem);
        stem.strip_prefix("agentflow_").unwrap_or(stem).to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a library file could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("{0}")]
    Load(#[from] plugin_loader::LoadError),
}

/// Every `*.so` directly in `dir`, sorted by name.
pub fn scan(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "so") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Removes half-written copies left by a host that was killed mid-copy.
/// Finished copies stay: another host sharing the directory may run them.
pub fn remove_stale_partials(copies: &Path) {
    let Ok(entries) = std::fs::read_dir(copies) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_suffix(".tmp").and_then(|n| n.rsplit('.').next()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a partial plugin copy left by an earlier run");
        }
    }
}

/// Copies the file's bytes to `<copies>/<hash>.so` (written beside and renamed,
/// so a copy is never half-written or rewritten) and returns the copy's path.
pub fn copy(file: &LibraryFile, bytes: &[u8], copies: &Path) -> Result<PathBuf, LibraryError> {
    std::fs::create_dir_all(copies)
        .map_err(|e| LibraryError::Io(format!("{}: {e}", copies.display())))?;
    let target = copies.join(format!("{}.so", &file.hash[..32.min(file.hash.len())]));
    if !target.exists() {
        let tmp = copies.join(format!(".{}.{}.tmp", file.hash, std::process::id()));
        std::fs::write(&tmp, bytes)
            .map_err(|e| LibraryError::Io(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &target)
            .map_err(|e| LibraryError::Io(format!("{}: {e}", target.display())))?;
    }
    Ok(target)
}

/// [`copy`], then loads the copy into this process.
pub fn load_copy(
    file: &LibraryFile,
    bytes: &[u8],
    copies: &Path,
) -> Result<LoadedPlugin, LibraryError> {
    let target = copy(file, bytes, copies)?;
    Ok(LoadedPlugin::load(&target)?)
}

/// Refuses a file (or directory) that someone other than its owner, root or
/// this user can write: loading a library runs its code.
pub fn check_not_writable_by_others(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let me = current_uid();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not by this user ({me}) or root; refusing to load code from it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o}); run `chmod go-w {}` to load it",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    Ok(())
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just created is its effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// A cheap check that a file is a complete ELF shared object, without loading
/// it: its segments and section table must lie within the file. Catches text
/// files named `.so` and truncated copies before any code runs.
pub fn check_complete_elf(bytes: &[u8]) -> Result<(), String> {
    use elf::endian::AnyEndian;
    use elf::ElfBytes;
    if !bytes.starts_with(b"\x7fELF") {
        return Err("not an ELF shared library".into());
    }
    let file = ElfBytes::<AnyEndian>::minimal_parse(bytes).map_err(|e| {
        format!(
            "truncated or corrupt ELF file of {} bytes ({e})",
            bytes.len()
        )
    })?;
    if file.ehdr.e_type != elf::abi::ET_DYN {
        return Err("not a shared library (ELF type is not ET_DYN)".into());
    }
    let len = bytes.len() as u64;
    let segments = file
        .segments()
        .ok_or_else(|| "not a loadable library (no program headers)".to_string())?;
    for seg in segments.iter() {
        let end = seg.p_offset.saturating_add(seg.p_filesz);
        if end > len {
            return Err(format!(
                "truncated: {len} bytes, but a segment ends at byte {end}"
            ));
        }
    }
    let sh_end = file.ehdr.e_shoff.saturating_add(
        u64::from(file.ehdr.e_shnum).saturating_mul(u64::from(file.ehdr.e_shentsize)),
    );
    if sh_end > len {
        return Err(format!(
            "truncated: {len} bytes, but the section table ends at byte {sh_end}"
        ));
    }
    Ok(())
}
