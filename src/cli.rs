//! The command line: arguments, `-o` mount options, and their defaults.

use std::path::PathBuf;

use clap::Parser;

use crate::desktop::sandbox::Policy;

/// Mount every AppImage in a folder as one read-only tree.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "appimagefs",
    version,
    override_usage = "appimagefs [OPTIONS] <SOURCE_DIR> <MOUNTPOINT>\n       appimagefs inspect [--json] [--mountpoint DIR] <FILES>...",
    about = "Mount every AppImage in a folder as one read-only tree",
    long_about = "Mount every AppImage in SOURCE_DIR as one read-only tree at MOUNTPOINT.\n\n\
Each AppImage (type 1 or 2, detected by content; the .AppImage extension is optional)\n\
appears as MOUNTPOINT/<Name>/, its AppDir, where <Name> is the file name without\n\
.AppImage. MOUNTPOINT/bin/ holds a launcher per app (it sets APPIMAGE, APPDIR, ARGV0\n\
and OWD as the AppImage runtime does, then runs AppRun) and MOUNTPOINT/share/ their\n\
menu entries and icons: append MOUNTPOINT/bin to PATH and add MOUNTPOINT/share to\n\
XDG_DATA_DIRS. Nothing is extracted: blocks are decompressed on demand into a shared\n\
in-memory cache, and a file a program is reading is decompressed ahead on all cores\n\
into the kernel's page cache. AppImages added, replaced or removed in SOURCE_DIR show\n\
up while mounted.\n\n\
The mount is always read-only, nosuid and nodev. Started as root it is readable by\n\
every user (allow_other); started as a normal user, only by that user unless\n\
-o allow_other is given (which needs user_allow_other in /etc/fuse.conf).",
    after_help = "Examples:\n  \
appimagefs /share/AppImages /opt/apps                 mount, return once ready\n  \
appimagefs inspect /share/AppImages/*                 what each file is, or why it is skipped\n  \
appimagefs -f /share/AppImages /opt/apps              stay in the foreground (systemd, containers)\n  \
appimagefs -o cache_size=1G /share/AppImages /opt/apps\n  \
fusermount3 -u /opt/apps                              unmount (or: umount /opt/apps)\n\n\
/etc/fstab:\n  \
/share/AppImages  /opt/apps  fuse.appimagefs  allow_other,nofail  0 0"
)]
pub struct Args {
    /// Folder holding the AppImages (not searched recursively).
    #[arg(value_name = "SOURCE_DIR")]
    pub source: PathBuf,

    /// Empty folder to mount the tree on.
    pub mountpoint: PathBuf,

    /// Stay in the foreground instead of returning once the mount is ready;
    /// SIGINT or SIGTERM unmount and exit.
    #[arg(short, long)]
    pub foreground: bool,

    /// Mount options, comma separated, as in fstab (listed with --help).
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append, long_help = O_HELP)]
    pub options: Vec<String>,

    /// Byte budget of the decompression cache shared by all images, e.g.
    /// 512M or 2G. Default: 1/16 of the machine's memory, at least 64M and
    /// at most 2G. Beside it, the opened images' parsed metadata (tables,
    /// directory trees) shares 1/8 of it, at least 16M and at most 128M:
    /// the least recently used image's is dropped and read again when needed.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<u64>,

    /// Keep decompressed blocks in this local folder (created private,
    /// mode 0700) and read them back instead of decoding them again, also
    /// in later daemons: after a restart, or in another container mapping
    /// the same host folder. Worth it where apps are launched in new
    /// daemons again and again and CPU is short (xz images most of all).
    /// What each app reads as it starts is kept there too and stored into
    /// the page cache ahead of it on its next start; its files of more than
    /// 256 KiB are kept whole and, where the kernel offers FUSE passthrough
    /// (Linux 6.9 or later, the daemon running as root), read by the kernel
    /// directly as from a plain folder. Off by default.
    /// Several daemons may share one folder; it must belong to the user
    /// running the mount.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Disk space the --cache-dir folder may use, e.g. 500M or 8G; the least
    /// recently used blocks, start-up profiles and whole files are deleted
    /// beyond it.
    /// Default: 2G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_dir_size: Option<u64>,

    /// Request-handling threads. Default: twice the number of CPUs, from 4
    /// to 16.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Also rescan the source folder every SECS seconds (0: only when
    /// inotify reports a change). Needed where the folder is on NFS or
    /// another network filesystem, whose changes from other hosts raise no
    /// inotify event.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub rescan_interval: u64,

    /// Append log lines to this file once running in the background
    /// (default: they are discarded after start-up; with -f they go to
    /// standard error).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Also log each app as it is mounted, failed requests, and at exit the
    /// block cache's counters and how many requests of each kind the
    /// kernel sent.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The long help of `-o`: one line per option.
const O_HELP: &str = "Mount options, comma separated, as in fstab; -o may be repeated:

  allow_other: every user may use the mount (the default for root; a normal user needs user_allow_other in /etc/fuse.conf)
  allow_root: root may use it as well as the mounting user
  default_permissions: enforce the owners and modes stored in the images (by default whoever may use the mount may read every app, as when an AppImage mounts itself)
  fsname=NAME: the source shown in /proc/mounts (default: SOURCE_DIR)
  sandbox=auto|keep|off: launchers of Chromium and Electron apps add --no-sandbox only where no user namespace can be created, so their sandbox cannot start (auto, the default; one line on stderr says so), never (keep) or always (off); see SECURITY.md
  cache_size=SIZE, cache_dir=DIR, cache_dir_size=SIZE, threads=N, rescan_interval=SECS, log_file=PATH, verbose: as --cache-size, --cache-dir, --cache-dir-size, --threads, --rescan-interval, --log-file, --verbose

ro, nosuid and nodev are always in force; rw, suid, dev, defaults, auto, noauto, user, users, nofail, _netdev, exec, noexec, atime, noatime, relatime and nonempty are accepted (and ignored) for fstab and mount(8).";

/// The whole command line as one clap definition, with `inspect` as a
/// subcommand: the man pages and shell completions are generated from it
/// (`main` parses the two forms separately, so SOURCE_DIR may be named
/// anything, even `inspect` given as `./inspect`).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Args::command()
        .args_conflicts_with_subcommands(true)
        .subcommand(InspectArgs::command().name("inspect"))
}

/// `appimagefs inspect`: report on AppImage files without mounting.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "appimagefs inspect",
    bin_name = "appimagefs inspect",
    about = "Show what appimagefs sees in AppImage files, or why a file is not usable",
    long_about = "Show what appimagefs sees in AppImage files: type, architecture, payload offset,\n\
compression and block size, file count, name and version from the desktop entry,\n\
update information, whether it is signed; then what a mount of a folder holding these\n\
files gives each: its folder, the desktop file chosen, launchers (versions of one app\n\
grouped as the mount groups them), menu entry, icons and file types. For a file that\n\
is not a usable AppImage, why. Exit status 0 when every file is usable, 1 otherwise.",
    after_help = "Examples:\n  appimagefs inspect /share/AppImages/*\n  appimagefs inspect --json Foo.AppImage | jq '.[0].version'\n  appimagefs inspect --mountpoint /opt/apps /srv/AppImages/*   menu entries as a mount at /opt/apps would have them"
)]
pub struct InspectArgs {
    /// AppImage files (or any files) to inspect.
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,

    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,

    /// The mount point the menu entries and launchers would point into
    /// (the default is a placeholder).
    #[arg(long, value_name = "DIR", default_value = crate::inspect::DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// Everything the daemon needs, after merging `-o` options with flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Source folder.
    pub source: PathBuf,
    /// Mount point.
    pub mountpoint: PathBuf,
    /// Stay in the foreground.
    pub foreground: bool,
    /// Let users other than the mounting one in (forced on for root).
    pub allow_other: bool,
    /// Let root in as well as the mounting user.
    pub allow_root: bool,
    /// Have the kernel enforce the owners and modes stored in the images.
    pub default_permissions: bool,
    /// Name shown as the mount's source in /proc/mounts.
    pub fsname: String,
    /// Cache budget in bytes.
    pub cache_size: u64,
    /// Folder of the on-disk block cache, if any.
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the on-disk block cache, bytes.
    pub cache_dir_size: u64,
    /// Request threads.
    pub threads: usize,
    /// Periodic rescan of the source folder, seconds (0: events only).
    pub rescan_interval: u64,
    /// Where background log lines go.
    pub log_file: Option<PathBuf>,
    /// Debug logging.
    pub verbose: bool,
    /// What Chromium and Electron apps' launchers do about `--no-sandbox`.
    pub sandbox: Policy,
}

/// Options accepted (and ignored) because fstab and mount(8) pass them.
const COMPAT_OPTIONS: &[&str] = &[
    "ro", "rw", "nosuid", "suid", "nodev", "dev", "defaults", "auto", "noauto", "user", "users",
    "nofail", "_netdev", "exec", "noexec", "atime", "noatime", "relatime", "nonempty",
];

/// Parses a size such as `512M`, `2G`, `64k` or `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 512M or 2G"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// The default cache budget: 1/16 of physical memory, clamped to 64M..2G.
pub fn default_cache_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let total = if pages > 0 && page > 0 {
        pages as u64 * page as u64
    } else {
        1 << 30
    };
    (total / 16).clamp(64 << 20, 2 << 30)
}

/// The default size limit of the `--cache-dir` folder (2G).
pub const DEFAULT_CACHE_DIR_SIZE: u64 = 2 << 30;

/// The default number of request threads: twice the CPUs, 4 to 16.
pub fn default_threads() -> usize {
    (crate::prefetch::cores() * 2).clamp(4, 16)
}

impl Args {
    /// Merges flags and `-o` options; `is_root` decides the access default.
    pub fn settings(&self, is_root: bool) -> Result<Settings, String> {
        let mut s = Settings {
            source: self.source.clone(),
            mountpoint: self.mountpoint.clone(),
            foreground: self.foreground,
            allow_other: is_root,
            allow_root: false,
            default_permissions: false,
            fsname: self.source.display().to_string(),
            cache_size: self.cache_size.unwrap_or_else(default_cache_size),
            cache_dir: self.cache_dir.clone(),
            cache_dir_size: self.cache_dir_size.unwrap_or(DEFAULT_CACHE_DIR_SIZE),
            threads: self
                .threads
                .map(usize::from)
                .unwrap_or_else(default_threads),
            rescan_interval: self.rescan_interval,
            log_file: self.log_file.clone(),
            verbose: self.verbose,
            sandbox: Policy::Auto,
        };
        for opt in self
            .options
            .iter()
            .flat_map(|o| o.split(','))
            .filter(|o| !o.is_empty())
        {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (key, value) {
                ("allow_other", None) => s.allow_other = true,
                ("allow_root", None) => s.allow_root = true,
                ("default_permissions", None) => s.default_permissions = true,
                ("verbose", None) => s.verbose = true,
                ("fsname", Some(v)) => s.fsname = v.to_string(),
                ("cache_size", Some(v)) => s.cache_size = parse_size(v)?,
                ("cache_dir", Some(v)) if !v.is_empty() => s.cache_dir = Some(PathBuf::from(v)),
                ("cache_dir_size", Some(v)) => s.cache_dir_size = parse_size(v)?,
                ("threads", Some(v)) => {
                    s.threads = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or_else(|| format!("threads={v}: expected a number from 1 to 256"))?
                }
                ("log_file", Some(v)) => s.log_file = Some(PathBuf::from(v)),
                ("sandbox", Some(v)) => s.sandbox = Policy::parse(v)?,
                ("rescan_interval", Some(v)) => {
                    s.rescan_interval = v
                        .parse()
                        .map_err(|_| format!("rescan_interval={v}: expected whole seconds"))?
                }
                (k, None) if COMPAT_OPTIONS.contains(&k) => {}
                _ => {
                    return Err(format!(
                        "unknown mount option '{opt}' (known: allow_other, allow_root, default_permissions, fsname=, cache_size=, cache_dir=, cache_dir_size=, threads=, rescan_interval=, log_file=, sandbox=, verbose, and the fstab options {})",
                        COMPAT_OPTIONS.join(", ")
                    ))
                }
            }
        }
        if s.cache_size < 1 << 20 {
            return Err(format!(
                "cache size {} is below the minimum of 1M",
                s.cache_size
            ));
        }
        if s.cache_dir.is_some() && s.cache_dir_size < 1 << 20 {
            return Err(format!(
                "cache folder size {} is below the minimum of 1M",
                s.cache_dir_size
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["appimagefs", "/src", "/mnt"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn the_documented_command_line_is_consistent() {
        command().debug_assert();
        let inspect = command()
            .try_get_matches_from(["appimagefs", "inspect", "--json", "a"])
            .unwrap();
        assert_eq!(inspect.subcommand_name(), Some("inspect"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn root_defaults_to_allow_other() {
        assert!(args(&[]).settings(true).unwrap().allow_other);
        assert!(!args(&[]).settings(false).unwrap().allow_other);
        assert!(
            args(&["-o", "allow_other"])
                .settings(false)
                .unwrap()
                .allow_other
        );
    }

    #[test]
    fn o_options_merge_and_unknown_ones_fail() {
        let s = args(&[
            "-o",
            "rw,nofail,cache_size=1G",
            "-o",
            "threads=3,fsname=apps",
        ])
        .settings(false)
        .unwrap();
        assert_eq!(
            (s.cache_size, s.threads, s.fsname.as_str()),
            (1 << 30, 3, "apps")
        );
        assert!(args(&["-o", "bogus"]).settings(false).is_err());
        assert!(args(&["-o", "threads=0"]).settings(false).is_err());
        assert!(args(&["-o", "cache_size=10"]).settings(false).is_err());
    }

    #[test]
    fn sandbox_is_auto_by_default_and_set_by_option() {
        let get = |a: &[&str]| args(a).settings(false).map(|s| s.sandbox);
        assert_eq!(get(&[]), Ok(Policy::Auto));
        assert_eq!(get(&["-o", "sandbox=keep"]), Ok(Policy::Keep));
        assert_eq!(get(&["-o", "ro,sandbox=off"]), Ok(Policy::Off));
        assert!(get(&["-o", "sandbox=no"]).is_err());
        assert!(get(&["-o", "sandbox"]).is_err());
    }

    #[test]
    fn cache_dir_is_off_by_default_and_set_by_flag_or_option() {
        let s = args(&[]).settings(false).unwrap();
        assert_eq!(
            (s.cache_dir, s.cache_dir_size),
            (None, DEFAULT_CACHE_DIR_SIZE)
        );
        let s = args(&["-o", "cache_dir=/var/cache/a,cache_dir_size=3G"])
            .settings(false)
            .unwrap();
        assert_eq!(
            (s.cache_dir, s.cache_dir_size),
            (Some(PathBuf::from("/var/cache/a")), 3 << 30)
        );
        let s = args(&["--cache-dir", "/c", "--cache-dir-size", "500M"])
            .settings(false)
            .unwrap();
        assert_eq!(
            (s.cache_dir, s.cache_dir_size),
            (Some(PathBuf::from("/c")), 500 << 20)
        );
        assert!(args(&["--cache-dir", "/c", "--cache-dir-size", "10"])
            .settings(false)
            .is_err());
    }
}
