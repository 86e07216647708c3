//! The option table: per command, the options that run a program, read orders from a file,
//! move the working directory or write somewhere (see [`super`] for the rule). Sources: each
//! command's manual (GNU coreutils, tar, git-*(1), ssh(1), curl(1), wget(1), rsync(1),
//! gcc(1), rustc, go help build, openssl(1), man(1), less(1), vim(1), npm-config(7), pip).
//! Harmless options that take a value are listed only when certain: an unlisted one is read
//! as a flag, which can only make the judgment stricter.

use super::Effect::{Block, Chdir, Code, Config, Outside, Runs, RunsIf, TarArchive, Writes};
use super::Val::{No, Optional, Required};
use super::{Effect, Risky, Spec, Style, Val};

const fn gnu(commands: &'static [&'static str], risky: &'static [Risky]) -> Spec {
    Spec {
        commands,
        style: Style::Gnu { abbrev: true },
        stop_at_operand: false,
        values: &[],
        optional: &[],
        exact: &[],
        risky,
        verbs: &[],
        plus_runs: false,
    }
}

const fn r(names: &'static [&'static str], val: Val, effect: Effect, why: &'static str) -> Risky {
    Risky {
        names,
        val,
        effect,
        why,
    }
}

const RUNS_PROG: &str = "names a program for the command to run";
const WRITES: &str = "names a file the command writes";
const WRITES_DIR: &str = "names a directory the command writes into";
const READS_OPTS: &str = "reads further options or commands from a file";

/// Options the diff machinery of git shares (diff, log, show, ...).
const GIT_DIFF_RISKY: &[Risky] = &[
    r(
        &["--ext-diff"],
        No,
        Runs,
        "runs the external diff program configured for the repository",
    ),
    r(
        &["--textconv"],
        No,
        Runs,
        "runs the text conversion filters configured for the repository",
    ),
    r(&["--output"], Required, Writes, WRITES),
];
const GIT_DIFF_VALUES: &[&str] = &[
    "-n",
    "--max-count",
    "--skip",
    "--since",
    "--until",
    "--author",
    "--committer",
    "--grep",
    "-G",
    "-S",
    "-O",
    "--format",
    "--pretty",
    "--date",
    "--encoding",
];

/// Git global options (before the subcommand): exact names only, as git.c parses them.
pub(crate) const GIT_GLOBAL: Spec = Spec {
    commands: &["git"],
    style: Style::Gnu { abbrev: false },
    stop_at_operand: true,
    values: &[
        "--namespace",
        "--super-prefix",
        "--attr-source",
        "--list-cmds",
    ],
    optional: &[],
    exact: &[],
    risky: &[
        r(
            &["-c"],
            Required,
            Runs,
            "sets configuration for this run, which can name a program to run",
        ),
        r(
            &["--config-env"],
            Required,
            Runs,
            "sets configuration from the environment, which can name a program to run",
        ),
        r(
            &["--exec-path"],
            Optional,
            Runs,
            "runs git's sub-commands from another directory",
        ),
        r(
            &["-C"],
            Required,
            Chdir,
            "runs in another directory, whose repository configuration can run programs",
        ),
        r(
            &["--git-dir"],
            Required,
            Chdir,
            "uses another repository, whose configuration can run programs",
        ),
        r(
            &["--work-tree"],
            Required,
            Chdir,
            "uses another work tree, which it may write",
        ),
    ],
    verbs: &[],
    plus_runs: false,
};

const fn git_sub(
    commands: &'static [&'static str],
    values: &'static [&'static str],
    exact: &'static [&'static str],
    risky: &'static [Risky],
    verbs: &'static [(&'static str, &'static str)],
) -> Spec {
    Spec {
        commands,
        style: Style::Gnu { abbrev: true },
        stop_at_operand: false,
        values,
        optional: &[],
        exact,
        risky,
        verbs,
        plus_runs: false,
    }
}

/// Git subcommands (after the global options).
pub(crate) const GIT_SUBCOMMANDS: &[Spec] = &[
    git_sub(
        &[
            "diff",
            "log",
            "show",
            "whatchanged",
            "diff-tree",
            "diff-index",
            "diff-files",
            "range-diff",
            "stash",
            "blame",
            "annotate",
            "cat-file",
        ],
        GIT_DIFF_VALUES,
        &["--text"],
        GIT_DIFF_RISKY,
        &[],
    ),
    git_sub(
        &["format-patch"],
        GIT_DIFF_VALUES,
        &["--text"],
        &[
            r(
                &["--ext-diff"],
                No,
                Runs,
                "runs the external diff program configured for the repository",
            ),
            r(
                &["--textconv"],
                No,
                Runs,
                "runs the text conversion filters configured for the repository",
            ),
            r(&["--output"], Required, Writes, WRITES),
            r(&["-o", "--output-directory"], Required, Writes, WRITES_DIR),
        ],
        &[],
    ),
    git_sub(
        &["grep"],
        &[
            "-e",
            "-f",
            "-A",
            "-B",
            "-C",
            "-m",
            "--max-depth",
            "--threads",
        ],
        &[],
        &[
            r(
                &["-O", "--open-files-in-pager"],
                Optional,
                Runs,
                "opens the matching files in a pager program",
            ),
            r(
                &["--textconv"],
                No,
                Runs,
                "runs the text conversion filters configured for the repository",
            ),
        ],
        &[],
    ),
    git_sub(
        &["fetch", "pull"],
        &["--depth", "--deepen", "-j", "--jobs", "--shallow-since"],
        &[],
        &[r(
            &["--upload-pack"],
            Required,
            Runs,
            "runs the named program in place of git-upload-pack",
        )],
        &[],
    ),
    git_sub(
        &["ls-remote"],
        &["--sort"],
        &[],
        &[r(
            &["--upload-pack", "--exec"],
            Required,
            Runs,
            "runs the named program in place of git-upload-pack",
        )],
        &[],
    ),
    git_sub(
        &["clone"],
        &[
            "--depth", "-b", "--branch", "-o", "--origin", "-j", "--jobs",
        ],
        &[],
        &[
            r(
                &["-u", "--upload-pack"],
                Required,
                Runs,
                "runs the named program in place of git-upload-pack",
            ),
            r(
                &["-c", "--config"],
                Required,
                Runs,
                "sets configuration of the new repository, which can name a program to run",
            ),
            r(
                &["--template"],
                Required,
                Runs,
                "copies hooks and configuration from a template directory",
            ),
            r(&["--separate-git-dir"], Required, Writes, WRITES_DIR),
        ],
        &[],
    ),
    git_sub(
        &["init"],
        &["-b", "--initial-branch", "--object-format", "--shared"],
        &[],
        &[
            r(
                &["--template"],
                Required,
                Runs,
                "copies hooks and configuration from a template directory",
            ),
            r(&["--separate-git-dir"], Required, Writes, WRITES_DIR),
        ],
        &[],
    ),
    git_sub(
        &["push", "send-pack"],
        &["-o", "--push-option", "--repo"],
        &[],
        &[r(
            &["--receive-pack", "--exec"],
            Required,
            Runs,
            "runs the named program in place of git-receive-pack",
        )],
        &[],
    ),
    git_sub(
        &["archive"],
        &["--format", "--prefix"],
        &[],
        &[
            r(
                &["--exec"],
                Required,
                Runs,
                "runs the named program in place of git-upload-archive",
            ),
            r(&["-o", "--output"], Required, Writes, WRITES),
        ],
        &[],
    ),
    git_sub(
        &["rebase"],
        &["--onto", "-s", "--strategy", "-X", "--strategy-option"],
        &[],
        &[r(
            &["-x", "--exec"],
            Required,
            Runs,
            "runs a shell command after each commit",
        )],
        &[],
    ),
    git_sub(
        &["bisect"],
        &[],
        &[],
        &[],
        &[("run", "runs a command for each bisection step")],
    ),
    git_sub(
        &["submodule"],
        &[],
        &[],
        &[],
        &[("foreach", "runs a shell command in every submodule")],
    ),
    git_sub(
        &["filter-branch"],
        &[],
        &[],
        &[r(
            &[
                "--env-filter",
                "--tree-filter",
                "--index-filter",
                "--parent-filter",
                "--msg-filter",
                "--commit-filter",
                "--tag-name-filter",
                "--setup",
            ],
            Required,
            Runs,
            "runs a shell command for every commit",
        )],
        &[],
    ),
    git_sub(
        &["difftool", "mergetool"],
        &[],
        &[],
        &[
            r(
                &["-x", "--extcmd"],
                Required,
                Runs,
                "runs the named diff command",
            ),
            r(
                &["-t", "--tool"],
                Required,
                Runs,
                "runs the named diff or merge tool",
            ),
        ],
        &[],
    ),
    git_sub(
        &["send-email"],
        &[],
        &[],
        &[r(
            &[
                "--sendmail-cmd",
                "--smtp-server",
                "--to-cmd",
                "--cc-cmd",
                "--header-cmd",
            ],
            Required,
            Runs,
            "runs the named program",
        )],
        &[],
    ),
    git_sub(
        &["apply"],
        &["-p", "-C", "--exclude", "--include", "--directory"],
        &[],
        &[r(
            &["--unsafe-paths"],
            No,
            Outside,
            "applies patches to paths outside the work tree",
        )],
        &[],
    ),
    git_sub(
        &["config"],
        &["--type", "--default", "--comment"],
        &[],
        &[r(&["-f", "--file"], Required, Writes, WRITES)],
        &[],
    ),
    git_sub(
        &["help"],
        &[],
        &[],
        &[r(&["-w", "--web"], No, Runs, "runs a web browser")],
        &[],
    ),
];

/// Every other command the guard knows options of.
pub(crate) const SPECS: &[Spec] = &[
    Spec {
        values: &[
            "-k",
            "--key",
            "-t",
            "--field-separator",
            "-S",
            "--buffer-size",
            "--batch-size",
            "--parallel",
        ],
        ..gnu(
            &["sort"],
            &[
                r(
                    &["--compress-program"],
                    Required,
                    Runs,
                    "runs the named program to compress temporary files",
                ),
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(
                    &["-T", "--temporary-directory"],
                    Required,
                    Writes,
                    WRITES_DIR,
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-i",
            "--input-range",
            "-n",
            "--head-count",
            "--random-source",
        ],
        ..gnu(
            &["shuf"],
            &[r(&["-o", "--output"], Required, Writes, WRITES)],
        )
    },
    Spec {
        // ripgrep's parser takes no abbreviations
        style: Style::Gnu { abbrev: false },
        values: &[
            "-A",
            "-B",
            "-C",
            "-d",
            "-E",
            "-e",
            "-f",
            "-g",
            "-j",
            "-M",
            "-m",
            "-r",
            "-t",
            "-T",
            "--pre-glob",
        ],
        ..gnu(
            &["rg"],
            &[
                r(
                    &["--pre"],
                    Required,
                    Runs,
                    "runs the named preprocessor program on every file searched",
                ),
                r(
                    &["--hostname-bin"],
                    Required,
                    Runs,
                    "runs the named program to learn the host name",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-b",
            "-f",
            "-g",
            "-H",
            "-K",
            "-L",
            "-N",
            "-T",
            "-V",
            "-X",
            "--exclude",
            "--transform",
            "--xform",
            "--owner",
            "--group",
            "--mode",
            "--mtime",
            "--format",
            "--strip-components",
        ],
        optional: &["--checkpoint"],
        exact: &["--checkpoint"],
        ..gnu(
            &["tar", "gtar", "bsdtar"],
            &[
                r(
                    &["--to-command"],
                    Required,
                    Runs,
                    "pipes every extracted file into the named command",
                ),
                r(&["-I", "--use-compress-program"], Required, Runs, RUNS_PROG),
                r(
                    &["--checkpoint-action"],
                    Required,
                    Runs,
                    "runs an action, which can be a command, at checkpoints",
                ),
                r(
                    &["-F", "--info-script", "--new-volume-script"],
                    Required,
                    Runs,
                    "runs the named script at the end of each volume",
                ),
                r(
                    &["--rsh-command"],
                    Required,
                    Runs,
                    "runs the named program to reach a remote archive",
                ),
                r(
                    &["--rmt-command"],
                    Required,
                    Runs,
                    "runs the named program as the remote tape server",
                ),
                r(
                    &["-C", "--directory"],
                    Required,
                    Writes,
                    "extracts into or reads from another directory",
                ),
                r(&["-f", "--file"], Required, TarArchive, "names the archive"),
                r(&["-g", "--listed-incremental"], Required, Writes, WRITES),
                r(&["--index-file"], Required, Writes, WRITES),
                r(&["--volno-file"], Required, Writes, WRITES),
                r(
                    &["-P", "--absolute-names"],
                    No,
                    Outside,
                    "keeps absolute and `..` member names, so it can write anywhere",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-n",
            "--suffixes",
            "-i",
            "--include",
            "-x",
            "--exclude",
            "-P",
            "--password",
            "-t",
            "--from-crlf",
        ],
        ..gnu(
            &["zip"],
            &[
                r(
                    &["-TT", "--unzip-command"],
                    Required,
                    Runs,
                    "runs the named command to test the archive",
                ),
                r(&["-O", "--output-file"], Required, Writes, WRITES),
                r(&["-b", "--temp-path"], Required, Writes, WRITES_DIR),
            ],
        )
    },
    Spec {
        style: Style::Gnu { abbrev: false },
        values: &["-P", "-I", "-O"],
        ..gnu(
            &["unzip"],
            &[
                r(&["-d"], Required, Writes, WRITES_DIR),
                r(
                    &["-:"],
                    No,
                    Outside,
                    "keeps `..` in member names, so it can write outside the target",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-f",
            "--filter",
            "--exclude",
            "--include",
            "--files-from",
            "--exclude-from",
            "--include-from",
            "--chmod",
            "--chown",
            "--timeout",
            "--bwlimit",
            "--max-size",
            "--min-size",
            "--suffix",
            "--compare-dest",
            "--copy-dest",
            "--link-dest",
            "--password-file",
        ],
        ..gnu(
            &["rsync"],
            &[
                r(
                    &["-e", "--rsh"],
                    Required,
                    Runs,
                    "runs the named remote shell program",
                ),
                r(
                    &["--rsync-path"],
                    Required,
                    Runs,
                    "runs the named program as the other rsync",
                ),
                r(
                    &["--write-batch", "--only-write-batch"],
                    Required,
                    Writes,
                    WRITES,
                ),
                r(&["-T", "--temp-dir"], Required, Writes, WRITES_DIR),
                r(&["--backup-dir"], Required, Writes, WRITES_DIR),
                r(&["--partial-dir"], Required, Writes, WRITES_DIR),
                r(&["--log-file"], Required, Writes, WRITES),
            ],
        )
    },
    Spec {
        values: &[
            "-b", "-c", "-D", "-i", "-J", "-L", "-l", "-m", "-O", "-p", "-P", "-Q", "-R", "-W",
            "-w", "-B",
        ],
        ..gnu(
            &["ssh"],
            &[
                r(
                    &["-o"],
                    Required,
                    RunsIf(&[
                        "proxycommand",
                        "localcommand",
                        "permitlocalcommand",
                        "knownhostscommand",
                        "pkcs11provider",
                        "securitykeyprovider",
                        "match",
                        "include",
                        "userknownhostsfile",
                        "controlpath",
                        "controlmaster",
                        "identityagent",
                        "remotecommand",
                        "proxyjump",
                    ]),
                    "sets an ssh option that runs a program or writes a file",
                ),
                r(&["-F"], Required, Config, READS_OPTS),
                r(&["-I"], Required, Runs, "loads the named PKCS#11 library"),
                r(&["-E"], Required, Writes, WRITES),
                r(
                    &["-S"],
                    Required,
                    Writes,
                    "creates a control socket at the named path",
                ),
            ],
        )
    },
    Spec {
        values: &["-c", "-i", "-J", "-l", "-P", "-X", "-B", "-R", "-s"],
        ..gnu(
            &["scp", "sftp"],
            &[
                r(
                    &["-o"],
                    Required,
                    RunsIf(&[
                        "proxycommand",
                        "localcommand",
                        "permitlocalcommand",
                        "knownhostscommand",
                        "pkcs11provider",
                        "securitykeyprovider",
                        "match",
                        "include",
                        "userknownhostsfile",
                        "controlpath",
                        "controlmaster",
                        "identityagent",
                        "proxyjump",
                    ]),
                    "sets an ssh option that runs a program or writes a file",
                ),
                r(&["-F"], Required, Config, READS_OPTS),
                r(
                    &["-S"],
                    Required,
                    Runs,
                    "runs the named program in place of ssh",
                ),
                r(
                    &["-D"],
                    Required,
                    Runs,
                    "runs the named program as the sftp server",
                ),
                r(
                    &["-b"],
                    Required,
                    Config,
                    "reads commands, which can run local commands, from a file",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-A",
            "-b",
            "--cookie",
            "-C",
            "-d",
            "--data",
            "--data-binary",
            "--data-raw",
            "--data-urlencode",
            "-e",
            "-E",
            "-F",
            "--form",
            "-H",
            "--header",
            "-m",
            "-r",
            "-T",
            "--upload-file",
            "-u",
            "--user",
            "-U",
            "-w",
            "-x",
            "--proxy",
            "-X",
            "--request",
            "-y",
            "-Y",
            "-z",
        ],
        ..gnu(
            &["curl"],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(&["--output-dir"], Required, Writes, WRITES_DIR),
                r(&["-K", "--config"], Required, Config, READS_OPTS),
                r(&["-D", "--dump-header"], Required, Writes, WRITES),
                r(&["-c", "--cookie-jar"], Required, Writes, WRITES),
                r(
                    &[
                        "--trace",
                        "--trace-ascii",
                        "--stderr",
                        "--etag-save",
                        "--hsts",
                        "--alt-svc",
                        "--libcurl",
                    ],
                    Required,
                    Writes,
                    WRITES,
                ),
                r(
                    &["--engine"],
                    Required,
                    Runs,
                    "loads the named crypto engine",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-t",
            "--tries",
            "-T",
            "--timeout",
            "-w",
            "--wait",
            "-Q",
            "--quota",
            "-U",
            "--user-agent",
            "-l",
            "--level",
            "-A",
            "--accept",
            "-R",
            "--reject",
            "-D",
            "--domains",
            "-I",
            "-X",
            "--header",
            "--user",
            "--password",
            "-i",
            "--input-file",
            "-B",
            "--base",
        ],
        ..gnu(
            &["wget"],
            &[
                r(&["-O", "--output-document"], Required, Writes, WRITES),
                r(&["-o", "--output-file"], Required, Writes, WRITES),
                r(&["-a", "--append-output"], Required, Writes, WRITES),
                r(&["-P", "--directory-prefix"], Required, Writes, WRITES_DIR),
                r(
                    &["--save-cookies", "--warc-file", "--rejected-log"],
                    Required,
                    Writes,
                    WRITES,
                ),
                r(
                    &["-e", "--execute"],
                    Required,
                    Config,
                    "runs a wgetrc command, which can set where files go",
                ),
                r(&["--config"], Required, Config, READS_OPTS),
                r(&["--use-askpass"], Required, Runs, RUNS_PROG),
            ],
        )
    },
    Spec {
        values: &["-S", "--suffix"],
        ..gnu(
            &["cp", "mv", "ln", "install"],
            &[
                r(&["-t", "--target-directory"], Required, Writes, WRITES_DIR),
                r(&["--strip-program"], Required, Runs, RUNS_PROG),
            ],
        )
    },
    Spec {
        values: &["-e", "--expression", "-l", "--line-length"],
        optional: &["-i", "--in-place"],
        ..gnu(
            &["sed", "gsed"],
            &[r(
                &["-f", "--file"],
                Required,
                Config,
                "reads the sed script, which can run commands, from a file",
            )],
        )
    },
    Spec {
        values: &["-v", "--assign", "-F", "--field-separator"],
        ..gnu(
            &["awk", "gawk", "mawk", "nawk"],
            &[
                r(
                    &["-f", "--file", "-E", "--exec", "-i", "--include"],
                    Required,
                    Config,
                    "runs an awk program read from a file",
                ),
                r(
                    &["-l", "--load"],
                    Required,
                    Runs,
                    "loads the named native extension",
                ),
                r(
                    &[
                        "-o",
                        "--pretty-print",
                        "-p",
                        "--profile",
                        "-d",
                        "--dump-variables",
                    ],
                    Optional,
                    Writes,
                    WRITES,
                ),
                r(
                    &["-D", "--debug"],
                    Optional,
                    Config,
                    "reads debugger commands",
                ),
                r(
                    &["-W"],
                    Required,
                    Runs,
                    "passes an implementation option, which can name a program file",
                ),
            ],
        )
    },
    Spec {
        stop_at_operand: true,
        values: &["-u", "--unset", "-a", "--argv0", "-S", "--split-string"],
        optional: &["--block-signal", "--default-signal", "--ignore-signal"],
        ..gnu(
            &["env"],
            &[r(
                &["-C", "--chdir"],
                Required,
                Chdir,
                "runs the command in another directory",
            )],
        )
    },
    Spec {
        stop_at_operand: true,
        values: &["-f", "--format"],
        ..gnu(
            &["time"],
            &[r(&["-o", "--output"], Required, Writes, WRITES)],
        )
    },
    Spec {
        stop_at_operand: true,
        values: &[
            "-n",
            "--server-num",
            "-s",
            "--server-args",
            "-p",
            "--xauth-protocol",
        ],
        ..gnu(
            &["xvfb-run"],
            &[r(
                &["-e", "--error-file", "-f", "--auth-file"],
                Required,
                Writes,
                WRITES,
            )],
        )
    },
    Spec {
        values: &[
            "-i", "-p", "-s", "-w", "-x", "-X", "-q", "-I", "-O", "-T", "-W", "-g", "-G",
        ],
        ..gnu(
            &["nc", "ncat", "netcat"],
            &[
                r(
                    &["-e", "-c", "--exec", "--sh-exec", "--lua-exec"],
                    Required,
                    Block,
                    "connects a program to a network socket",
                ),
                r(
                    &["-o", "--output", "--append-output"],
                    Required,
                    Writes,
                    WRITES,
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-a",
            "--additional-suffix",
            "-b",
            "--bytes",
            "-C",
            "--line-bytes",
            "-l",
            "--lines",
            "-n",
            "--number",
            "-t",
            "--separator",
        ],
        ..gnu(
            &["split", "csplit"],
            &[r(
                &["--filter"],
                Required,
                Runs,
                "pipes every piece into the named command",
            )],
        )
    },
    Spec {
        values: &[
            "-j",
            "--jobs",
            "-l",
            "--load-average",
            "-o",
            "--old-file",
            "-W",
            "--what-if",
            "--assume-new",
            "--assume-old",
        ],
        ..gnu(
            &["make", "gmake"],
            &[
                r(
                    &["-E", "--eval"],
                    Required,
                    Runs,
                    "evaluates make text, which can run commands",
                ),
                r(
                    &["-f", "--file", "--makefile"],
                    Required,
                    Code,
                    "runs the recipes of the named makefile",
                ),
                r(
                    &["-I", "--include-dir"],
                    Required,
                    Code,
                    "reads makefiles from the named directory",
                ),
                r(
                    &["-C", "--directory"],
                    Required,
                    Chdir,
                    "runs in another directory",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-b",
            "-h",
            "-j",
            "-p",
            "-P",
            "-x",
            "-y",
            "-z",
            "--pattern",
            "-#",
            "--shift",
        ],
        plus_runs: true,
        ..gnu(
            &["less", "more"],
            &[
                r(
                    &["-o", "--log-file", "-O", "--LOG-FILE"],
                    Required,
                    Writes,
                    WRITES,
                ),
                r(
                    &["-k", "--lesskey-file", "--lesskey-src", "--lesskey-content"],
                    Required,
                    Config,
                    "reads key bindings, which can run commands",
                ),
                r(&["-T", "--tag-file"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        values: &[
            "-L",
            "--locale",
            "-m",
            "--systems",
            "-M",
            "--manpath",
            "-S",
            "-s",
            "--sections",
            "-e",
            "--extension",
            "-R",
            "--recode",
            "-E",
            "--encoding",
            "-T",
            "--troff-device",
            "-p",
            "--preprocessor",
        ],
        ..gnu(
            &["man"],
            &[
                r(
                    &["-P", "--pager"],
                    Required,
                    Runs,
                    "runs the named pager program",
                ),
                r(&["-H", "--html"], Optional, Runs, "runs a web browser"),
                r(
                    &["-X", "--gxditview"],
                    Optional,
                    Runs,
                    "runs a viewer program",
                ),
                r(&["-C", "--config-file"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        style: Style::Gnu { abbrev: false },
        values: &["-q", "-T", "-t"],
        plus_runs: true,
        ..gnu(
            &["vi", "vim", "nvim", "view", "vimdiff", "ex", "rvim"],
            &[
                r(
                    &["-c", "--cmd"],
                    Required,
                    Runs,
                    "runs an editor command, which can run a shell",
                ),
                r(
                    &["-S", "-u", "-U", "-s"],
                    Required,
                    Config,
                    "runs editor commands from a file",
                ),
                r(&["-w", "-W", "-i"], Required, Writes, WRITES),
            ],
        )
    },
    Spec {
        values: &["--tag", "--otp", "-w", "--workspace", "--omit", "--include"],
        verbs: &[
            ("explore", "runs a shell in a package"),
            ("edit", "runs an editor"),
            ("exec", "runs a package's program"),
            ("x", "runs a package's program"),
            ("dlx", "runs a package's program"),
        ],
        ..gnu(
            &["npm", "npx", "pnpm", "yarn"],
            &[
                r(
                    &[
                        "--script-shell",
                        "--shell",
                        "--editor",
                        "--browser",
                        "--git",
                        "--viewer",
                    ],
                    Required,
                    Runs,
                    RUNS_PROG,
                ),
                r(&["-c", "--call"], Required, Runs, "runs a shell command"),
                r(
                    &["--node-options"],
                    Required,
                    Runs,
                    "passes options to node, which can load code",
                ),
                r(
                    &["--userconfig", "--globalconfig"],
                    Required,
                    Config,
                    READS_OPTS,
                ),
                r(&["--prefix", "-C", "--cache"], Required, Writes, WRITES_DIR),
                r(
                    &["-g", "--global", "--location"],
                    Optional,
                    Outside,
                    "installs outside the workspace",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-r",
            "--requirement",
            "-c",
            "--constraint",
            "-i",
            "--index-url",
            "--extra-index-url",
            "-e",
            "--editable",
            "--python-version",
            "--platform",
            "--timeout",
            "--retries",
        ],
        ..gnu(
            &["pip", "pip3"],
            &[
                r(
                    &[
                        "-t",
                        "--target",
                        "--prefix",
                        "--root",
                        "--src",
                        "-d",
                        "--dest",
                        "-w",
                        "--wheel-dir",
                        "--cache-dir",
                    ],
                    Required,
                    Writes,
                    WRITES_DIR,
                ),
                r(&["--log", "--report"], Required, Writes, WRITES),
                r(
                    &["--config-settings", "-C"],
                    Required,
                    Runs,
                    "passes settings to a build backend, which runs code",
                ),
            ],
        )
    },
    Spec {
        values: &[
            "-j",
            "--jobs",
            "-p",
            "--package",
            "--target",
            "--features",
            "-F",
            "--bin",
            "--example",
            "--test",
            "--bench",
            "--profile",
            "--color",
            "--message-format",
        ],
        ..gnu(
            &["cargo"],
            &[
                r(
                    &["--config"],
                    Required,
                    Runs,
                    "sets configuration, which can name a program to run (runner, rustc wrapper, linker)",
                ),
                r(
                    &["-Z"],
                    Required,
                    Runs,
                    "turns on unstable behaviour, which can run programs",
                ),
                r(
                    &["--target-dir", "--artifact-dir", "--out-dir"],
                    Required,
                    Writes,
                    WRITES_DIR,
                ),
                r(
                    &["--manifest-path"],
                    Required,
                    Code,
                    "builds another project, whose build scripts run",
                ),
                r(&["-C"], Required, Chdir, "runs in another directory"),
            ],
        )
    },
    Spec {
        values: &["-i", "-c", "-s", "--chunk-size"],
        ..gnu(
            &["iconv"],
            &[r(&["-o", "--output"], Required, Writes, WRITES)],
        )
    },
    Spec {
        values: &[
            "-f",
            "--from",
            "-r",
            "--read",
            "-t",
            "--to",
            "-w",
            "--write",
            "-M",
            "--metadata",
            "-V",
            "--variable",
        ],
        ..gnu(
            &["pandoc"],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(
                    &[
                        "-F",
                        "--filter",
                        "-L",
                        "--lua-filter",
                        "--pdf-engine",
                        "--pdf-engine-opt",
                    ],
                    Required,
                    Runs,
                    RUNS_PROG,
                ),
                r(&["-d", "--defaults"], Required, Config, READS_OPTS),
                r(&["--extract-media"], Required, Writes, WRITES_DIR),
            ],
        )
    },
    Spec {
        values: &[
            "-r",
            "--recipient",
            "-u",
            "--local-user",
            "--default-key",
            "--keyserver",
        ],
        ..gnu(
            &["gpg", "gpg2"],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(
                    &["--photo-viewer", "--exec-path"],
                    Required,
                    Runs,
                    RUNS_PROG,
                ),
                r(&["--homedir", "--options"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        values: &[
            "-b",
            "--block-size",
            "-F",
            "--format",
            "-T",
            "--threads",
            "-M",
            "--memlimit",
        ],
        ..gnu(
            &["zstd", "unzstd", "zstdcat"],
            &[r(&["-o"], Required, Writes, WRITES)],
        )
    },
    Spec {
        values: &["-d", "--dir"],
        ..gnu(
            &["aria2c"],
            &[
                r(
                    &[
                        "--on-download-complete",
                        "--on-download-start",
                        "--on-download-error",
                        "--on-download-pause",
                        "--on-download-stop",
                        "--on-bt-download-complete",
                    ],
                    Required,
                    Runs,
                    RUNS_PROG,
                ),
                r(&["-d", "--dir"], Required, Writes, WRITES_DIR),
                r(&["-l", "--log", "--save-session"], Required, Writes, WRITES),
                r(
                    &["--conf-path", "-i", "--input-file"],
                    Required,
                    Config,
                    READS_OPTS,
                ),
            ],
        )
    },
    Spec {
        values: &[
            "--transfers",
            "--checkers",
            "--bwlimit",
            "--include",
            "--exclude",
            "--filter",
        ],
        ..gnu(
            &["rclone"],
            &[
                r(&["--password-command"], Required, Runs, RUNS_PROG),
                r(&["--config"], Required, Config, READS_OPTS),
                r(&["--log-file"], Required, Writes, WRITES),
            ],
        )
    },
    Spec {
        values: &["-a", "--auth", "-A", "--auth-type"],
        ..gnu(
            &["http", "https", "httpie", "xh"],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(
                    &["--session"],
                    Required,
                    Writes,
                    "reads and writes a session file",
                ),
            ],
        )
    },
    Spec {
        style: Style::Words,
        values: &[
            "-x", "-I", "-D", "-U", "-L", "-l", "-include", "-isystem", "-MT", "-MQ", "-target",
            "--target",
        ],
        ..gnu(
            &[
                "gcc", "cc", "clang", "clang++", "g++", "c++", "cpp", "as", "nasm",
            ],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(&["-MF"], Required, Writes, WRITES),
                r(
                    &["-B"],
                    Required,
                    Runs,
                    "runs the compiler's passes from another directory",
                ),
                r(
                    &["-wrapper", "--wrapper"],
                    Required,
                    Runs,
                    "runs every compiler pass under the named program",
                ),
                r(
                    &["-fplugin=", "-fplugin-arg", "-fpass-plugin="],
                    Required,
                    Runs,
                    "loads the named plugin into the compiler",
                ),
                r(
                    &["-specs=", "--specs="],
                    Required,
                    Runs,
                    "reads a spec file, which can name programs to run",
                ),
                r(
                    &["-fuse-ld=", "--ld-path="],
                    Required,
                    Runs,
                    "runs the named linker",
                ),
                r(
                    &["-save-temps=", "-dumpdir", "-dumpbase"],
                    Required,
                    Writes,
                    WRITES,
                ),
                r(
                    &["-Wl,", "-Xlinker", "-Xassembler", "-Wa,"],
                    Required,
                    RunsIf(&["-o", "--output", "plugin", "@", "-T", "--script"]),
                    "passes options that name a file written or a program loaded",
                ),
                r(&["@"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        style: Style::Words,
        values: &["-T", "-L", "-l", "-m", "-e", "--entry"],
        ..gnu(
            &[
                "ld", "ld.bfd", "ld.gold", "ld.lld", "lld", "objcopy", "strip", "ar",
            ],
            &[
                r(&["-o", "--output"], Required, Writes, WRITES),
                r(
                    &["--plugin", "-plugin"],
                    Required,
                    Runs,
                    "loads the named plugin",
                ),
                r(&["@"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        style: Style::Words,
        values: &[
            "--edition",
            "--crate-type",
            "--crate-name",
            "--cfg",
            "-L",
            "-l",
            "--target",
            "--cap-lints",
            "-A",
            "-W",
            "-D",
            "-F",
        ],
        ..gnu(
            &["rustc", "rustdoc"],
            &[
                r(&["-o"], Required, Writes, WRITES),
                r(&["--out-dir"], Required, Writes, WRITES_DIR),
                r(
                    &["--emit"],
                    Required,
                    RunsIf(&["="]),
                    "writes its output to the named path",
                ),
                r(
                    &["-C", "--codegen"],
                    Required,
                    RunsIf(&[
                        "linker",
                        "link-arg",
                        "incremental",
                        "profile-generate",
                        "llvm-args",
                        "dlltool",
                    ]),
                    "sets a code generation option that runs a program or writes files",
                ),
                r(
                    &["-Z"],
                    Required,
                    Runs,
                    "turns on unstable behaviour, which can run programs",
                ),
                r(
                    &["--extern"],
                    Required,
                    Runs,
                    "loads the named crate, whose procedural macros run in the compiler",
                ),
                r(&["@"], Required, Config, READS_OPTS),
            ],
        )
    },
    Spec {
        style: Style::Words,
        values: &[
            "-run",
            "-tags",
            "-p",
            "-count",
            "-timeout",
            "-bench",
            "-coverprofile",
        ],
        ..gnu(
            &["go"],
            &[
                r(&["-o"], Required, Writes, WRITES),
                r(&["-toolexec", "-exec"], Required, Runs, RUNS_PROG),
                r(
                    &["-ldflags", "-gcflags", "-asmflags"],
                    Required,
                    RunsIf(&["extld", "-o", "plugin"]),
                    "passes tool flags that run a program",
                ),
                r(&["-overlay", "-modfile"], Required, Config, READS_OPTS),
                r(&["-C"], Required, Chdir, "runs in another directory"),
                r(&["-pkgdir"], Required, Writes, WRITES_DIR),
            ],
        )
    },
    Spec {
        style: Style::Words,
        values: &[
            "-in",
            "-inform",
            "-outform",
            "-passin",
            "-passout",
            "-keyform",
            "-subj",
            "-days",
            "-name",
            "-CAfile",
            "-CApath",
            "-key",
            "-cert",
            "-connect",
            "-servername",
        ],
        exact: &["-outform"],
        ..gnu(
            &["openssl"],
            &[
                r(&["-out", "-writerand", "-keyout"], Required, Writes, WRITES),
                r(
                    &["-engine", "-provider", "-provider-path"],
                    Required,
                    Runs,
                    "loads the named engine or provider module",
                ),
                r(
                    &["-config"],
                    Required,
                    Config,
                    "reads a configuration file, which can load modules",
                ),
            ],
        )
    },
    Spec {
        style: Style::Words,
        ..gnu(
            &["7z", "7za", "7zr"],
            &[
                r(&["-o"], Required, Writes, WRITES_DIR),
                r(&["-w"], Optional, Writes, WRITES_DIR),
            ],
        )
    },
    Spec {
        style: Style::Words,
        ..gnu(
            &["lynx"],
            &[
                r(
                    &["-editor", "-exec", "-cmd_script", "-cfg", "-lss"],
                    Required,
                    Runs,
                    "runs a program or reads configuration that can run one",
                ),
                r(&["-cmd_log"], Required, Writes, WRITES),
            ],
        )
    },
    Spec {
        style: Style::Words,
        ..gnu(
            &["w3m"],
            &[r(
                &["-o", "-config"],
                Required,
                Config,
                "sets options, which can name programs to run",
            )],
        )
    },
];
