//! The project `run` uploads: the files under a directory that git would track (`.gitignore`,
//! `.ignore` and `.git/info/exclude` honoured, `.git` itself left out), and the one compressed
//! tar stream that carries them: zstd when the machine has it (Lambda's Ubuntu images do),
//! gzip otherwise.
//!
//! Re-uploads send only what changed, judged the way rsync judges by default: a file whose
//! size and modification time (whole seconds) match the machine's copy is the same file. tar
//! keeps modification times, so an uploaded file matches itself on the next run.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// One file of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    /// Its path under the project root.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, in whole seconds since the epoch.
    pub mtime: i64,
    /// Its permission bits.
    pub mode: u32,
    /// Where a symbolic link points (then `size` is the target's length).
    pub link: Option<PathBuf>,
}

/// The largest file searched for the API key before an upload: keys live in small files
/// (`.env`, configs, notebooks); datasets and weights are not read twice.
pub const SECRET_SCAN_LIMIT: u64 = 8 * 1024 * 1024;

/// The files of a project directory.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    /// Its files, sorted by path.
    pub files: Vec<ProjectFile>,
}

impl Project {
    /// Walks `root`, honouring ignore files the way git does (also outside a git repository).
    pub fn scan(root: &Path) -> io::Result<Project> {
        let mut files = Vec::new();
        let walk = ignore::WalkBuilder::new(root)
            .hidden(false)
            .git_global(false)
            .require_git(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        for entry in walk {
            let entry = entry.map_err(io::Error::other)?;
            let Some(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                continue;
            }
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_path_buf();
            let metadata = std::fs::symlink_metadata(path)?;
            let link = if file_type.is_symlink() {
                Some(std::fs::read_link(path)?)
            } else if file_type.is_file() {
                None
            } else {
                // Sockets, fifos, devices: nothing a project means to upload.
                continue;
            };
            files.push(ProjectFile {
                path: relative,
                size: metadata.len(),
                mtime: metadata.mtime(),
                mode: metadata.permissions().mode() & 0o7777,
                link,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Project {
            root: root.to_path_buf(),
            files,
        })
    }

    /// The project directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the project has `path` (relative), after ignore rules.
    pub fn contains(&self, path: &Path) -> bool {
        self.files
            .binary_search_by(|file| file.path.as_path().cmp(path))
            .is_ok()
    }

    /// Takes out of the project every regular file of at most [`SECRET_SCAN_LIMIT`] bytes
    /// whose contents hold `secret` (the API key: in a `.env`, a config, a notebook), and
    /// returns their paths: they are never uploaded.
    pub fn withhold_containing(&mut self, secret: &str) -> Vec<PathBuf> {
        let needle = secret.trim().as_bytes();
        if needle.is_empty() {
            return Vec::new();
        }
        let finder = memchr::memmem::Finder::new(needle);
        let root = self.root.clone();
        let mut withheld = Vec::new();
        self.files.retain(|file| {
            let holds = file.link.is_none()
                && file.size <= SECRET_SCAN_LIMIT
                && std::fs::read(root.join(&file.path))
                    .is_ok_and(|bytes| finder.find(&bytes).is_some());
            if holds {
                withheld.push(file.path.clone());
            }
            !holds
        });
        withheld
    }

    /// Bytes in all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The files whose copy on the machine differs (or is missing).
    pub fn changed<'a>(&'a self, remote: &RemoteListing) -> Vec<&'a ProjectFile> {
        self.files
            .iter()
            .filter(|file| {
                file.link.is_some()
                    || remote.files.get(&file.path) != Some(&(file.size, file.mtime))
            })
            .collect()
    }
}

/// What files exist in the machine's copy of the project: (size, mtime) by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteListing {
    files: HashMap<PathBuf, (u64, i64)>,
}

impl RemoteListing {
    /// The shell command that prints the listing of the current directory, read by
    /// [`RemoteListing::parse`]: GNU find, NUL-terminated records, fractional mtimes.
    pub const COMMAND: &'static str = r"find . -type f -printf '%s %T@ %P\0'";

    /// Reads the output of [`RemoteListing::COMMAND`].
    pub fn parse(output: &[u8]) -> RemoteListing {
        let mut files = HashMap::new();
        for record in output.split(|b| *b == 0) {
            let text = String::from_utf8_lossy(record);
            let mut parts = text.splitn(3, ' ');
            let (Some(size), Some(mtime), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let seconds = mtime.split('.').next().unwrap_or(mtime);
            if let (Ok(size), Ok(mtime)) = (size.parse(), seconds.parse()) {
                files.insert(PathBuf::from(path), (size, mtime));
            }
        }
        RemoteListing { files }
    }

    /// How many files the machine has.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the machine has none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// How a tar stream is compressed, by what the machine can decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd, level 1: hundreds of MB/s each way, raw blocks for incompressible data.
    Zstd,
    /// gzip: everywhere, but its decompression (~150 MB/s) can be the slowest link.
    Gzip,
}

impl Codec {
    /// A shell command printing the machine's codec on a line of its own.
    pub const PROBE: &'static str =
        "{ command -v zstd >/dev/null 2>&1 && echo zstd || echo gzip; }";

    /// Splits the output of a command that began with [`Codec::PROBE`] into the codec and
    /// the rest.
    pub fn split(output: &[u8]) -> (Codec, &[u8]) {
        let end = output
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(output.len());
        let codec = if &output[..end] == b"zstd" {
            Codec::Zstd
        } else {
            Codec::Gzip
        };
        (codec, output.get(end + 1..).unwrap_or_default())
    }

    /// GNU tar's option for this codec, for both directions (tar adds `-d` to extract).
    pub fn tar_option(self) -> &'static str {
        match self {
            Codec::Zstd => "--use-compress-program='zstd -1'",
            Codec::Gzip => "--use-compress-program='gzip -1'",
        }
    }
}

/// Files at least this big are probed for compressibility before being sent.
const PROBE_ABOVE: u64 = 256 * 1024;
/// Bytes of a big file compressed to judge the rest.
const PROBE_BYTES: usize = 64 * 1024;

/// Writes `files` (of the project at `root`) to `out` as one compressed tar stream, and
/// returns the bytes written. With gzip, files that do not compress (archives, weights,
/// media: judged on their first 64 KiB) are stored rather than squeezed for nothing.
/// `sent` hears the project bytes sent so far after each file.
pub fn write_archive<W: Write>(
    root: &Path,
    files: &[&ProjectFile],
    codec: Codec,
    out: W,
    sent: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut total = 0;
    let counting = CountingWriter::new(out);
    let compressor = match codec {
        Codec::Zstd => Compressor::Zstd(AdaptiveZstd::new(counting, ADAPT_WINDOW)?),
        Codec::Gzip => Compressor::Gzip(AdaptiveGz::new(counting)),
    };
    let mut builder = tar::Builder::new(compressor);
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(file.mode);
        header.set_mtime(u64::try_from(file.mtime).unwrap_or(0));
        if let Some(target) = &file.link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, &file.path, target)?;
            continue;
        }
        let mut source = File::open(root.join(&file.path))?;
        match builder.get_mut() {
            Compressor::Gzip(gz) => {
                let level = if file.size >= PROBE_ABOVE && !compresses(&mut source)? {
                    Compression::none()
                } else {
                    Compression::fast()
                };
                gz.set_level(level)?;
            }
            Compressor::Zstd(zstd) => zstd.adapt()?,
        }
        // A file that changed size since the scan is sent as scanned: the header is written
        // first, so the body must match it.
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(file.size);
        builder.append_data(&mut header, &file.path, ExactLength::new(source, file.size))?;
        total += file.size;
        sent(total);
    }
    let counting = match builder.into_inner()? {
        Compressor::Zstd(encoder) => encoder.finish()?,
        Compressor::Gzip(gz) => gz.finish()?,
    };
    Ok(counting.written)
}

/// The compressing end of the stream.
enum Compressor<W: Write> {
    Zstd(AdaptiveZstd<W>),
    Gzip(AdaptiveGz<W>),
}

/// Input bytes between two decisions on the zstd level.
const ADAPT_WINDOW: u64 = 16 << 20;
/// The zstd levels the stream moves between: from nearly free (fast links: loopback, a
/// datacenter) to a strong ratio (a laptop's uplink).
const ZSTD_LEVELS: [i32; 6] = [-20, -5, -1, 1, 3, 6];
/// Where it starts: level 1.
const ZSTD_START: usize = 3;

/// A zstd stream that follows the link: when writes to the pipe wait (the network is the
/// bottleneck) it compresses harder, when they never wait (the CPU is) it compresses less.
/// A change ends the current zstd frame and starts another (`zstd -d` reads concatenated
/// frames as one stream).
struct AdaptiveZstd<W: Write> {
    encoder: Option<zstd::Encoder<'static, TimedWriter<W>>>,
    level: usize,
    window: u64,
    input: u64,
    window_started: std::time::Instant,
    blocked_at_start: std::time::Duration,
    levels_used: Vec<i32>,
}

impl<W: Write> AdaptiveZstd<W> {
    fn new(out: W, window: u64) -> io::Result<Self> {
        let timed = TimedWriter {
            inner: out,
            blocked: std::time::Duration::ZERO,
        };
        Ok(AdaptiveZstd {
            encoder: Some(Self::encoder(timed, ZSTD_LEVELS[ZSTD_START])?),
            level: ZSTD_START,
            window,
            input: 0,
            window_started: std::time::Instant::now(),
            blocked_at_start: std::time::Duration::ZERO,
            levels_used: vec![ZSTD_LEVELS[ZSTD_START]],
        })
    }

    fn encoder(
        out: TimedWriter<W>,
        level: i32,
    ) -> io::Result<zstd::Encoder<'static, TimedWriter<W>>> {
        let mut encoder = zstd::Encoder::new(out, level)?;
        // Compress on a worker thread while this one reads files and writes the pipe.
        encoder.multithread(1)?;
        Ok(encoder)
    }

    fn take(&mut self) -> io::Result<zstd::Encoder<'static, TimedWriter<W>>> {
        self.encoder
            .take()
            .ok_or_else(|| io::Error::other("the zstd stream already ended"))
    }

    /// Between files: after a window of input, moves the level by how much of the window
    /// was spent waiting on the pipe.
    fn adapt(&mut self) -> io::Result<()> {
        if self.input < self.window {
            return Ok(());
        }
        let blocked_total = self
            .encoder
            .as_ref()
            .map_or(std::time::Duration::ZERO, |e| e.get_ref().blocked);
        let blocked = blocked_total.saturating_sub(self.blocked_at_start);
        let elapsed = self
            .window_started
            .elapsed()
            .max(std::time::Duration::from_micros(1));
        let waiting = blocked.as_secs_f64() / elapsed.as_secs_f64();
        let next = if waiting > 0.5 {
            (self.level + 1).min(ZSTD_LEVELS.len() - 1)
        } else if waiting < 0.2 {
            self.level.saturating_sub(1)
        } else {
            self.level
        };
        if next != self.level {
            let out = self.take()?.finish()?;
            self.encoder = Some(Self::encoder(out, ZSTD_LEVELS[next])?);
            self.level = next;
            self.levels_used.push(ZSTD_LEVELS[next]);
        }
        self.input = 0;
        self.window_started = std::time::Instant::now();
        self.blocked_at_start = blocked_total;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        Ok(self.take()?.finish()?.inner)
    }
}

impl<W: Write> Write for AdaptiveZstd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Some(encoder) => {
                let n = encoder.write(buf)?;
                self.input += n as u64;
                Ok(n)
            }
            None => Err(io::Error::other("the zstd stream already ended")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Some(encoder) => encoder.flush(),
            None => Ok(()),
        }
    }
}

/// Adds up the time writes spend in the writer below (the pipe to ssh).
struct TimedWriter<W> {
    inner: W,
    blocked: std::time::Duration,
}

impl<W: Write> Write for TimedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let started = std::time::Instant::now();
        let n = self.inner.write(buf);
        self.blocked += started.elapsed();
        n
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Zstd(encoder) => encoder.write(buf),
            Compressor::Gzip(gz) => gz.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Zstd(encoder) => encoder.flush(),
            Compressor::Gzip(gz) => gz.flush(),
        }
    }
}

/// Whether the start of `file` shrinks by a tenth at the fastest level; rewinds it.
fn compresses(file: &mut File) -> io::Result<bool> {
    use std::io::Seek as _;
    let mut sample = Vec::with_capacity(PROBE_BYTES);
    Read::by_ref(file)
        .take(PROBE_BYTES as u64)
        .read_to_end(&mut sample)?;
    file.rewind()?;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&sample)?;
    let compressed = encoder.finish()?;
    Ok(compressed.len() * 10 < sample.len() * 9)
}

/// A gzip stream whose compression level can change between files: a change ends the current
/// gzip member and starts another (gunzip reads concatenated members as one stream).
struct AdaptiveGz<W: Write> {
    encoder: Option<GzEncoder<W>>,
    level: Compression,
}

impl<W: Write> AdaptiveGz<W> {
    fn new(out: W) -> Self {
        AdaptiveGz {
            encoder: Some(GzEncoder::new(out, Compression::fast())),
            level: Compression::fast(),
        }
    }

    fn set_level(&mut self, level: Compression) -> io::Result<()> {
        if level == self.level {
            return Ok(());
        }
        let out = self.take()?.finish()?;
        self.encoder = Some(GzEncoder::new(out, level));
        self.level = level;
        Ok(())
    }

    fn take(&mut self) -> io::Result<GzEncoder<W>> {
        self.encoder
            .take()
            .ok_or_else(|| io::Error::other("the gzip stream already ended"))
    }

    fn finish(mut self) -> io::Result<W> {
        self.take()?.finish()
    }
}

impl<W: Write> Write for AdaptiveGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Some(encoder) => encoder.write(buf),
            None => Err(io::Error::other("the gzip stream already ended")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Some(encoder) => encoder.flush(),
            None => Ok(()),
        }
    }
}

/// Counts the bytes that reach the wire.
struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> CountingWriter<W> {
    fn new(inner: W) -> Self {
        CountingWriter { inner, written: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `length` bytes: what a file had when scanned, cut or padded with zeros if it
/// changed since, so the tar header written before it stays true.
struct ExactLength<R> {
    inner: R,
    left: u64,
}

impl<R: Read> ExactLength<R> {
    fn new(inner: R, length: u64) -> Self {
        ExactLength {
            inner,
            left: length,
        }
    }
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank: pad.
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks a tar stream (compressed with `codec`) into `dest`, confined to `allowed` (paths
/// relative to `dest`, as the run asked for them); returns the regular files written. What
/// the machine sends is not trusted: an absolute path, a `..`, anything under `.git/`, an
/// entry outside the asked-for paths, a link that leaves them, a hard link, a device or a
/// fifo stops the unpacking with an error naming it, before it is written; nothing is ever
/// written outside `dest`'s asked-for paths (the tar crate also refuses to write through a
/// link that leaves `dest`).
pub fn unpack_archive<R: Read>(
    input: R,
    codec: Codec,
    dest: &Path,
    allowed: &[PathBuf],
) -> io::Result<usize> {
    std::fs::create_dir_all(dest)?;
    let decoder: Box<dyn Read> = match codec {
        Codec::Zstd => Box::new(zstd::Decoder::new(input)?),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
    };
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut count = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        let link = entry.link_name()?.map(std::borrow::Cow::into_owned);
        if let Err(why) = confined(&path, kind, link.as_deref(), allowed) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the machine sent `{}`, which {why}: refused, and nothing more was unpacked",
                    path.display()
                ),
            ));
        }
        let written = entry.unpack_in(dest).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "the machine sent `{}`, which could not be written: {e}",
                    path.display()
                ),
            )
        })?;
        if written && kind.is_file() {
            count += 1;
        }
    }
    Ok(count)
}

/// Why an entry at `path` of `kind` (a link to `link`) may not be unpacked for `allowed`.
fn confined(
    path: &Path,
    kind: tar::EntryType,
    link: Option<&Path>,
    allowed: &[PathBuf],
) -> Result<(), &'static str> {
    use std::path::Component;
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    };
    if !plain(path) {
        return Err("is absolute or has `..` in it");
    }
    if path.components().any(|c| c.as_os_str() == ".git") {
        return Err("is under `.git/`");
    }
    let inside = |p: &Path| {
        allowed
            .iter()
            .any(|a| p.starts_with(a) || (a.starts_with(p) && kind.is_dir()))
    };
    if !inside(path) {
        return Err("is outside the paths asked for");
    }
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => Ok(()),
        tar::EntryType::Symlink => {
            // Resolved from the link's own directory, it must stay inside what was asked for.
            let Some(target) = link else {
                return Err("is a link to nothing");
            };
            if target.is_absolute() {
                return Err("is a link to an absolute path");
            }
            let mut resolved: Vec<&std::ffi::OsStr> = path
                .parent()
                .map(|p| p.components().map(Component::as_os_str).collect())
                .unwrap_or_default();
            for part in target.components() {
                match part {
                    Component::Normal(name) => resolved.push(name),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        if resolved.pop().is_none() {
                            return Err("is a link that leaves the download");
                        }
                    }
                    Component::RootDir | Component::Prefix(_) => {
                        return Err("is a link to an absolute path");
                    }
                }
            }
            let resolved: PathBuf = resolved.iter().collect();
            if allowed.iter().any(|a| resolved.starts_with(a))
                && !resolved.components().any(|c| c.as_os_str() == ".git")
            {
                Ok(())
            } else {
                Err("is a link that leaves the download")
            }
        }
        tar::EntryType::Link => Err("is a hard link"),
        tar::EntryType::Char | tar::EntryType::Block => Err("is a device"),
        tar::EntryType::Fifo => Err("is a fifo"),
        _ => Err("is not a file, a directory or a link"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, bytes: &[u8]) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lambda-gha-project-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn ignored_files_and_git_metadata_stay_home() {
        let root = temp();
        write(&root, ".gitignore", b"data/\n*.ckpt\n");
        write(&root, "train.py", b"print('hi')\n");
        write(&root, "src/model.py", b"x = 1\n");
        write(&root, "data/big.bin", b"0123");
        write(&root, "run.ckpt", b"0123");
        write(&root, ".git/HEAD", b"ref: refs/heads/main\n");
        write(&root, ".env.example", b"A=1\n");
        let project = Project::scan(&root).expect("scan");
        let paths: Vec<String> = project
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [".env.example", ".gitignore", "src/model.py", "train.py"]
        );
        assert!(project.contains(Path::new("train.py")));
        assert!(!project.contains(Path::new("run.ckpt")));
        std::fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn only_files_that_differ_from_the_machine_are_sent_again() {
        let root = temp();
        write(&root, "a.txt", b"aaaa");
        write(&root, "b.txt", b"bbbb");
        write(&root, "c.txt", b"cccc");
        let project = Project::scan(&root).expect("scan");
        let mtime = project.files[0].mtime;
        let listing = format!("4 {mtime}.25 a.txt\0004 {}.0 b.txt\0", mtime - 7);
        let remote = RemoteListing::parse(listing.as_bytes());
        assert_eq!(remote.len(), 2);
        let changed: Vec<String> = project
            .changed(&remote)
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        // a.txt matches (sub-second part ignored), b.txt is older there, c.txt is missing.
        assert_eq!(changed, ["b.txt", "c.txt"]);
        std::fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn the_codec_is_read_off_the_first_line() {
        assert_eq!(
            Codec::split(b"zstd\n1 2 a\0"),
            (Codec::Zstd, &b"1 2 a\0"[..])
        );
        assert_eq!(Codec::split(b"gzip\n"), (Codec::Gzip, &b""[..]));
        assert_eq!(Codec::split(b""), (Codec::Gzip, &b""[..]));
    }

    #[test]
    fn an_archive_round_trips_with_modes_times_and_incompressible_files() {
        for codec in [Codec::Zstd, Codec::Gzip] {
            round_trip(codec);
        }
    }

    /// A link that takes `delay` per write: slow enough that the stream waits on it.
    struct SlowLink(Vec<u8>, std::time::Duration);

    impl Write for SlowLink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.1);
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn adaptive_stream(link: SlowLink) -> (Vec<i32>, Vec<u8>, Vec<u8>) {
        let mut zstd = AdaptiveZstd::new(link, 64 * 1024).expect("encoder");
        let mut input = Vec::new();
        for i in 0..40u32 {
            let chunk = format!("line {i} of a very compressible text\n").repeat(2_000);
            zstd.write_all(chunk.as_bytes()).expect("write");
            input.extend_from_slice(chunk.as_bytes());
            zstd.adapt().expect("adapt");
        }
        let levels = zstd.levels_used.clone();
        let out = zstd.finish().expect("finish").0;
        (levels, input, out)
    }

    #[test]
    fn zstd_compresses_harder_on_a_slow_link_and_less_on_a_fast_one() {
        let (slow, input, out) =
            adaptive_stream(SlowLink(Vec::new(), std::time::Duration::from_millis(3)));
        assert!(
            slow.last() > slow.first(),
            "levels on a slow link: {slow:?}"
        );
        let mut decoded = Vec::new();
        zstd::Decoder::new(out.as_slice())
            .expect("decoder")
            .read_to_end(&mut decoded)
            .expect("concatenated frames decode as one stream");
        assert_eq!(decoded, input);

        let (fast, input, out) = adaptive_stream(SlowLink(Vec::new(), std::time::Duration::ZERO));
        assert!(
            fast.last() < fast.first(),
            "levels on a fast link: {fast:?}"
        );
        let mut decoded = Vec::new();
        zstd::Decoder::new(out.as_slice())
            .expect("decoder")
            .read_to_end(&mut decoded)
            .expect("decode");
        assert_eq!(decoded, input);
    }

    fn round_trip(codec: Codec) {
        let root = temp();
        write(&root, "run.sh", b"#!/bin/bash\necho hi\n");
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let text = "all work and no play\n".repeat(20_000);
        write(&root, "notes/long.txt", text.as_bytes());
        let noise: Vec<u8> = (0..400_000).map(|_| fastrand::u8(..)).collect();
        write(&root, "weights.bin", &noise);
        let project = Project::scan(&root).expect("scan");
        let files: Vec<&ProjectFile> = project.files.iter().collect();
        let mut stream = Vec::new();
        let written =
            write_archive(&root, &files, codec, &mut stream, &mut |_| {}).expect("archive");
        assert_eq!(written, stream.len() as u64);
        // Text squeezed, noise stored: the stream is about the noise's size.
        assert!(stream.len() < noise.len() + 60_000, "{}", stream.len());

        let dest = temp();
        let count =
            unpack_archive(stream.as_slice(), codec, &dest, &[PathBuf::new()]).expect("unpack");
        assert_eq!(count, 3);
        assert_eq!(
            std::fs::read(dest.join("weights.bin")).expect("read"),
            noise
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("notes/long.txt")).expect("read"),
            text
        );
        let unpacked = Project::scan(&dest).expect("scan");
        assert_eq!(unpacked.files, project.files, "sizes, times and modes kept");
        for dir in [root, dest] {
            std::fs::remove_dir_all(dir).expect("cleanup");
        }
    }
}
