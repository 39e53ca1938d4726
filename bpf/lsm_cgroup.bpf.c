// SPDX-License-Identifier: GPL-2.0-only
/*
 * A container cannot leave its cgroup subtree. Identity is the cgroup: a task that got
 * itself into a cgroup outside its container's (a write to another cgroup's cgroup.procs,
 * or clone3(CLONE_INTO_CGROUP) with an outside directory, both possible with
 * --cgroupns=host and CAP_SYS_ADMIN or an unconfined seccomp) would be judged by nothing.
 * A task of a container may change cgroupfs only inside its container's subtree; moves
 * inside it (systemd's init.scope, nested runtimes) stay free.
 *
 * Each guard sits on a hook that runs once per operation, never per path component (the
 * kernel's own check, MAY_WRITE on a cgroup.procs, reaches only inode_permission, which runs
 * for every component of every lookup on the host):
 * - a cgroupfs file opened for writing (cgroup.procs, cgroup.threads, limits): file_open.
 *   A migration by write needs the destination's cgroup.procs open for writing;
 * - mkdir, rmdir, rename and xattrs of a cgroup: the path and inode hooks, by the parent;
 * - clone3(CLONE_INTO_CGROUP): no LSM hook runs after the kernel resolved the destination
 *   (task_alloc runs before), so fexit/cgroup_can_fork reads the destination the kernel
 *   will use (kargs->cgrp, no second fd lookup to race) and kills the caller: the kernel
 *   ends the fork when a fatal signal is pending ("let kill terminate clone"), so the
 *   child never runs.
 * Each exits on its cheapest compare first; only cgroupfs operations look the task up.
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define FMODE_WRITE 0x2
#define CLONE_INTO_CGROUP 0x200000000ULL
#define SIGKILL 9
#define CGROUP2_SUPER_MAGIC 0x63677270
#define CHAIN_MAX 32 /* a power of two (indexes are masked), >= ABI_MAX_CGROUP_LEVEL */

/*
 * Per-CPU scratch: the record (the cgroup file's path from the cgroup2 root, as in
 * "/system.slice/cgroup.procs") and the nodes walked to build it. Too big for the stack.
 */
struct kn_chain {
	struct file_event ev;
	__u64 kn[CHAIN_MAX];                 /* kernfs_node addresses, read with CO-RE */
	int n;                               /* valid entries; kn[n - 1] is the root */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kn_chain);
} cgroup_scratch SEC(".maps");

static __always_inline struct kernfs_node *kn_at(struct kn_chain *c, int i)
{
	return (struct kernfs_node *)c->kn[i & (CHAIN_MAX - 1)];
}

/*
 * Write the names of chain->kn[n-1] (just below the root) .. kn[0] as "/a/b/file" into
 * ev->path; returns the bytes written. The root itself has no name of its own.
 */
static __always_inline __u32 chain_path(struct kn_chain *chain, struct file_event *ev)
{
	__u32 off = 0;

	for (int i = CHAIN_MAX - 1; i >= 0; i--) {
		const char *name;
		long n;

		if (i >= chain->n - 1 || off >= ABI_MAX_PATH - 256)
			continue;
		name = BPF_CORE_READ((struct kernfs_node___new *)kn_at(chain, i), name);
		ev->path[off & (ABI_MAX_PATH - 1)] = '/';
		off++;
		n = bpf_probe_read_kernel_str(ev->path + (off & (ABI_MAX_PATH - 1)), 255, name);
		if (n > 1)
			off += n - 1; /* without the NUL */
	}
	return off;
}

/*
 * Is kernfs node `kn` (a cgroup's directory, or a file in one) inside the subtree of the
 * container's cgroup `cgid`? 0 if so; otherwise the denial is reported (`op` names the
 * hook, the path is kn's from the cgroup2 root) and -EPERM returned.
 */
static __always_inline int guard(struct kernfs_node *kn, __u64 cgid, struct container *ct, __u32 op)
{
	struct kn_chain *chain;
	struct file_event *ev;
	__u32 zero = 0;
	__u64 size;

	if (!kn)
		return -EPERM; /* fail closed: a cgroupfs inode without its node cannot be placed */
	chain = bpf_map_lookup_elem(&cgroup_scratch, &zero);
	if (!chain)
		return -EPERM;
	/*
	 * Up from the node: a directory is its cgroup, a file's parent is; a cgroup's node id
	 * is its cgroup id. Meeting the container's cgroup means inside its subtree.
	 */
	chain->n = 0;
	for (int level = 0; level < CHAIN_MAX && kn; level++) {
		if (BPF_CORE_READ(kn, id) == cgid)
			return 0;
		chain->kn[level & (CHAIN_MAX - 1)] = (__u64)kn;
		chain->n = level + 1;
		kn = kn_parent(kn);
	}

	ev = &chain->ev;
	ev->access = ACCF_WRITE;
	ev->flags = 0;
	ev->op = op;
	/* chain_path stays below ABI_MAX_PATH; the mask says so to the verifier */
	ev->path_len = chain_path(chain, ev) & (ABI_MAX_PATH - 1);
	size = offsetof(struct file_event, path) + ev->path_len;
	/* the target: the cgroupfs node written to */
	report(&ev->hdr, size, EV_FILE, cgid, ct, RULE_CGROUP_ESCAPE, ACT_DENY, chain->kn[0]);
	return -EPERM;
}

/* The guard for an inode: nothing unless it is cgroupfs and the task a container's. */
static __always_inline int guard_inode(struct inode *inode, __u32 op)
{
	struct container *ct;
	__u64 cgid;

	if (!inode || BPF_CORE_READ(inode, i_sb, s_magic) != CGROUP2_SUPER_MAGIC)
		return 0;
	ct = current_or_starting_container(&cgid);
	if (!ct)
		return 0;
	return guard(BPF_CORE_READ(inode, i_private), cgid, ct, op); /* kernfs: every inode's node */
}

SEC("lsm/file_open")
int BPF_PROG(enforcer_cgroup_open, struct file *file, int ret)
{
	if (ret)
		return ret; /* an earlier LSM already denied */
	if (!(file->f_mode & FMODE_WRITE))
		return 0; /* most opens leave at this compare: direct loads, no helper call */
	return guard_inode(file->f_inode, FOP_OPEN);
}

/* mkdir, rmdir and rename change the parent cgroup: judged by the parent's node. */
SEC("lsm/path_mkdir")
int BPF_PROG(enforcer_cgroup_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return guard_inode(BPF_CORE_READ(dir, dentry, d_inode), FOP_MKDIR);
}

SEC("lsm/path_rmdir")
int BPF_PROG(enforcer_cgroup_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return guard_inode(BPF_CORE_READ(dir, dentry, d_inode), FOP_RMDIR);
}

SEC("lsm/path_rename")
int BPF_PROG(enforcer_cgroup_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	if (ret)
		return ret;
	ret = guard_inode(BPF_CORE_READ(old_dir, dentry, d_inode), FOP_RENAME);
	if (ret)
		return ret;
	return guard_inode(BPF_CORE_READ(new_dir, dentry, d_inode), FOP_RENAME);
}

/* The xattr hooks' argument lists changed across kernels (idmap); the dentry is the 2nd. */
SEC("lsm/inode_setxattr")
int BPF_PROG(enforcer_cgroup_setxattr, void *idmap, struct dentry *dentry)
{
	return guard_inode(BPF_CORE_READ(dentry, d_inode), FOP_XATTR);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(enforcer_cgroup_removexattr, void *idmap, struct dentry *dentry)
{
	return guard_inode(BPF_CORE_READ(dentry, d_inode), FOP_XATTR);
}

/*
 * clone3(CLONE_INTO_CGROUP): after cgroup_can_fork succeeded, kargs->cgrp is where the
 * child will be. Outside the container's subtree the caller is killed before copy_process
 * goes on, which then fails the fork: nothing runs in the outside cgroup.
 */
SEC("fexit/cgroup_can_fork")
int BPF_PROG(enforcer_cgroup_fork, struct task_struct *child, struct kernel_clone_args *kargs, int ret)
{
	struct container *ct;
	struct cgroup *dst;
	__u64 cgid;

	if (ret || !(kargs->flags & CLONE_INTO_CGROUP))
		return 0; /* nearly every fork leaves here: one load */
	ct = current_or_starting_container(&cgid);
	if (!ct)
		return 0;
	dst = kargs->cgrp;
	if (guard(dst ? BPF_CORE_READ(dst, kn) : NULL, cgid, ct, FOP_CGROUP_MOVE) &&
	    bpf_send_signal(SIGKILL))
		stat_add(STAT_KILL_FAILED);
	return 0;
}
