// SPDX-License-Identifier: GPL-2.0-only
/*
 * A container cannot leave its cgroup subtree. Identity is the cgroup: a task that got
 * itself into a cgroup outside its container's (a write to another cgroup's cgroup.procs,
 * or clone3(CLONE_INTO_CGROUP) with an outside directory, both possible with
 * --cgroupns=host and CAP_SYS_ADMIN or an unconfined seccomp) would be judged by nothing.
 * So the move is refused where the kernel asks for it: every cgroup migration checks
 * MAY_WRITE on a cgroup.procs (or cgroup.threads) file, of the destination when it is
 * opened for writing and of the common ancestor of source and destination when the write
 * (or clone3) happens. A task of a container may write only to cgroups inside its
 * container's subtree; moves inside it (systemd's init.scope, nested runtimes) stay free.
 *
 * inode_permission runs for every path component the kernel resolves, so the exits come
 * in order of cost: a permission check that is not a write (nearly all of them: lookups
 * ask for MAY_EXEC) is one compare, a write outside cgroupfs two loads more, and only a
 * write on cgroupfs looks the task's container up.
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define MAY_WRITE 0x2
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

SEC("lsm/inode_permission")
int BPF_PROG(enforcer_cgroup_write, struct inode *inode, int mask, int ret)
{
	struct kernfs_node *kn;
	struct kn_chain *chain;
	struct file_event *ev;
	struct container *ct;
	__u32 zero = 0;
	__u64 cgid, size;

	if (ret)
		return ret; /* an earlier LSM already denied */
	if (!(mask & MAY_WRITE))
		return 0;
	/* direct loads (the hook's inode is a BTF pointer): no helper call on this path */
	if (inode->i_sb->s_magic != CGROUP2_SUPER_MAGIC)
		return 0;
	ct = current_or_starting_container(&cgid);
	if (!ct)
		return 0;
	kn = BPF_CORE_READ(inode, i_private); /* kernfs: every inode's node */
	if (!kn)
		return -EPERM; /* fail closed: a cgroupfs inode without its node cannot be placed */
	chain = bpf_map_lookup_elem(&cgroup_scratch, &zero);
	if (!chain)
		return -EPERM;
	/*
	 * Up from the node: a directory is its cgroup (making a child cgroup writes to it), a
	 * file's parent is; a cgroup's node id is its cgroup id. Meeting the container's
	 * cgroup means inside its subtree.
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
	ev->op = FOP_CGROUP_MOVE;
	/* chain_path stays below ABI_MAX_PATH; the mask says so to the verifier */
	ev->path_len = chain_path(chain, ev) & (ABI_MAX_PATH - 1);
	size = offsetof(struct file_event, path) + ev->path_len;
	/* the target: the cgroupfs node written to */
	report(&ev->hdr, size, EV_FILE, cgid, ct, RULE_CGROUP_ESCAPE, ACT_DENY, chain->kn[0]);
	return -EPERM;
}
