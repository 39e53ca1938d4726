/*
 * enfhelper: the system calls an attacker would use to sidestep path rules, one per
 * command, for the bypass suite (tests/integration/test_bypass*.py). Busybox cannot make
 * most of them (openat with a directory fd, O_PATH, renameat2, chroot after opening a
 * directory, mmap with PROT_EXEC...).
 *
 * Usage: enfhelper [as UID GID] COMMAND ARGS...
 * Exit status: 0 when the last system call succeeded, else its errno (EPERM = 1), with
 * "ERR <errno> <message>" on stderr; data read is written to stdout.
 * Built static (gcc -static) so it runs in the busybox test image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int fail(const char *what)
{
	int e = errno;

	fprintf(stderr, "ERR %d %s: %s\n", e, what, strerror(e));
	return e ? e : 255;
}

/* Read the whole fd to stdout; returns 0 or errno. */
static int dump(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(1, buf, n) < 0)
			return fail("write");
	return n < 0 ? fail("read") : 0;
}

static int open_flags(const char *mode)
{
	int flags = 0;

	if (strchr(mode, 'r') && strchr(mode, 'w'))
		flags = O_RDWR;
	else if (strchr(mode, 'w'))
		flags = O_WRONLY;
	else
		flags = O_RDONLY;
	if (strchr(mode, 't'))
		flags |= O_TRUNC;
	if (strchr(mode, 'a'))
		flags |= O_APPEND;
	if (strchr(mode, 'c'))
		flags |= O_CREAT;
	if (strchr(mode, 'p'))
		flags = O_PATH;
	return flags;
}

static int finish_open(int fd, const char *what, const char *mode)
{
	if (fd < 0)
		return fail(what);
	if (strchr(mode, 'r') && !strchr(mode, 'p'))
		return dump(fd);
	return 0;
}

static int run(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "open") && argc >= 2) { /* open PATH [MODE: r w rw t a c p] */
		const char *mode = argc > 2 ? argv[2] : "r";
		return finish_open(open(argv[1], open_flags(mode), 0644), "open", mode);
	}
	if (!strcmp(cmd, "openat") && argc >= 3) { /* openat DIR RELPATH [MODE] */
		const char *mode = argc > 3 ? argv[3] : "r";
		int dfd = open(argv[1], O_PATH | O_DIRECTORY);
		if (dfd < 0)
			return fail("open dir");
		return finish_open(openat(dfd, argv[2], open_flags(mode), 0644), "openat", mode);
	}
	if (!strcmp(cmd, "reopen") && argc >= 2) { /* reopen PATH: O_PATH, then /proc/self/fd/N */
		char proc[64];
		int fd = open(argv[1], O_PATH);
		if (fd < 0)
			return fail("open O_PATH");
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		return finish_open(open(proc, O_RDONLY), "reopen", "r");
	}
	if (!strcmp(cmd, "chroot-open") && argc >= 3) { /* chroot-open DIR PATH */
		if (chroot(argv[1]) || chdir("/"))
			return fail("chroot");
		return finish_open(open(argv[2], O_RDONLY), "open", "r");
	}
	if (!strcmp(cmd, "chroot-escape") && argc >= 3) { /* chroot-escape DIR RELPATH */
		int root = open("/", O_PATH | O_DIRECTORY);
		if (root < 0 || chroot(argv[1]) || chdir("/"))
			return fail("chroot");
		/* `root` is outside the new root: paths through it are not below the task's root */
		return finish_open(openat(root, argv[2], O_RDONLY), "openat", "r");
	}
	if (!strcmp(cmd, "deep") && argc >= 5) { /* deep DIR NAME COUNT LEAF [mkdir] */
		/* Relative steps only: the path may be longer than PATH_MAX. */
		int fd = open(argv[1], O_PATH | O_DIRECTORY), n = atoi(argv[3]), next;
		for (int i = 0; fd >= 0 && i < n; i++) {
			next = openat(fd, argv[2], O_PATH | O_DIRECTORY);
			close(fd);
			fd = next;
		}
		if (fd < 0)
			return fail("walk");
		if (argc > 5 && !strcmp(argv[5], "mkdir"))
			return mkdirat(fd, argv[4], 0755) ? fail("mkdirat") : 0;
		return finish_open(openat(fd, argv[4], O_RDONLY), "openat", "r");
	}
	if (!strcmp(cmd, "truncate") && argc >= 2)
		return truncate(argv[1], 0) ? fail("truncate") : 0;
	if (!strcmp(cmd, "unlink") && argc >= 2)
		return unlink(argv[1]) ? fail("unlink") : 0;
	if (!strcmp(cmd, "rmdir") && argc >= 2)
		return rmdir(argv[1]) ? fail("rmdir") : 0;
	if (!strcmp(cmd, "rename") && argc >= 3)
		return rename(argv[1], argv[2]) ? fail("rename") : 0;
	if (!strcmp(cmd, "exchange") && argc >= 3)
		return syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE)
			       ? fail("renameat2") : 0;
	if (!strcmp(cmd, "link") && argc >= 3)
		return link(argv[1], argv[2]) ? fail("link") : 0;
	if (!strcmp(cmd, "symlink") && argc >= 3)
		return symlink(argv[1], argv[2]) ? fail("symlink") : 0;
	if (!strcmp(cmd, "mkdir") && argc >= 2)
		return mkdir(argv[1], 0755) ? fail("mkdir") : 0;
	if (!strcmp(cmd, "mknod") && argc >= 2) /* a fifo: no device rule involved */
		return mknod(argv[1], S_IFIFO | 0644, 0) ? fail("mknod") : 0;
	if (!strcmp(cmd, "chmod") && argc >= 3)
		return chmod(argv[1], strtol(argv[2], NULL, 8)) ? fail("chmod") : 0;
	if (!strcmp(cmd, "chown") && argc >= 4)
		return chown(argv[1], atoi(argv[2]), atoi(argv[3])) ? fail("chown") : 0;
	if ((!strcmp(cmd, "mmap-exec") || !strcmp(cmd, "mprotect-exec")) && argc >= 2) {
		int fd = open(argv[1], O_RDONLY);
		int direct = !strcmp(cmd, "mmap-exec");
		void *p;
		if (fd < 0)
			return fail("open");
		p = mmap(NULL, 4096, PROT_READ | (direct ? PROT_EXEC : 0), MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			return fail("mmap");
		if (!direct && mprotect(p, 4096, PROT_READ | PROT_EXEC))
			return fail("mprotect");
		return 0;
	}
	if (!strcmp(cmd, "execfd") && argc >= 2) { /* execfd PATH ARGV0 ARGS: execveat(fd, "") */
		int fd = open(argv[1], O_PATH);
		if (fd < 0)
			return fail("open O_PATH");
		syscall(SYS_execveat, fd, "", argv + 2, (char *[]){ NULL }, AT_EMPTY_PATH);
		return fail("execveat");
	}
	if (!strcmp(cmd, "memfd-exec") && argc >= 3) { /* memfd-exec SRC ARGV0 ARGS: code from no file */
		char buf[65536];
		ssize_t n;
		int src = open(argv[1], O_RDONLY), mfd = memfd_create("payload", MFD_CLOEXEC);
		if (src < 0 || mfd < 0)
			return fail("open/memfd_create");
		while ((n = read(src, buf, sizeof(buf))) > 0)
			if (write(mfd, buf, n) != n)
				return fail("write");
		syscall(SYS_execveat, mfd, "", argv + 2, (char *[]){ NULL }, AT_EMPTY_PATH);
		return fail("execveat");
	}
	if (!strcmp(cmd, "memfd-mmap-exec") && argc >= 2) { /* memfd-mmap-exec SRC: map it PROT_EXEC */
		char buf[4096];
		int src = open(argv[1], O_RDONLY), mfd = memfd_create("payload", 0);
		if (src < 0 || mfd < 0 || read(src, buf, sizeof(buf)) != sizeof(buf) ||
		    write(mfd, buf, sizeof(buf)) != sizeof(buf))
			return fail("copy to memfd");
		if (mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, mfd, 0) == MAP_FAILED)
			return fail("mmap");
		return 0;
	}
	if (!strcmp(cmd, "utimens") && argc >= 2) /* utimensat: timestamps, no path hook */
		return utimensat(AT_FDCWD, argv[1], NULL, 0) ? fail("utimensat") : 0;
	if (!strcmp(cmd, "futimens") && argc >= 2) { /* the same on a read-only descriptor */
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0)
			return fail("open");
		return futimens(fd, NULL) ? fail("futimens") : 0;
	}
	if (!strcmp(cmd, "setxattr") && argc >= 4) /* setxattr PATH NAME VALUE */
		return setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), 0) ? fail("setxattr") : 0;
	if (!strcmp(cmd, "removexattr") && argc >= 3)
		return removexattr(argv[1], argv[2]) ? fail("removexattr") : 0;
	if (!strcmp(cmd, "opentree") && argc >= 3) { /* opentree DIR RELPATH: a detached clone */
		int tree = syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE);
		if (tree < 0)
			return fail("open_tree");
		return finish_open(openat(tree, argv[2], O_RDONLY), "openat", "r");
	}
	if (!strcmp(cmd, "handle") && argc >= 3) { /* handle MOUNTDIR PATH: open_by_handle_at */
		struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
		int mount_id, mfd;
		fh->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(AT_FDCWD, argv[2], fh, &mount_id, 0))
			return fail("name_to_handle_at");
		mfd = open(argv[1], O_RDONLY | O_DIRECTORY);
		if (mfd < 0)
			return fail("open mount dir");
		return finish_open(open_by_handle_at(mfd, fh, O_RDONLY), "open_by_handle_at", "r");
	}
	if (!strcmp(cmd, "chroot-hold") && argc >= 2) { /* an entrypoint that chroots, asleep */
		if (chroot(argv[1]) || chdir("/"))
			return fail("chroot");
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "nsholder")) { /* a process in a mount namespace of its own, asleep */
		if (unshare(CLONE_NEWNS))
			return fail("unshare");
		for (;;)
			pause();
	}
	fprintf(stderr, "enfhelper: unknown command or missing arguments: %s\n", cmd);
	return 254;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "as")) {
		/* Drop to UID/GID for good (no supplementary groups, no capabilities left). */
		gid_t gid = atoi(argv[3]);
		uid_t uid = atoi(argv[2]);
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
			return fail("drop privileges");
		argc -= 3;
		argv += 3;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: enfhelper [as UID GID] COMMAND ARGS...\n");
		return 254;
	}
	return run(argc - 1, argv + 1);
}
